// `make run` (scripts/run.sh) opened as a person would: one URL printed, the
// jobs dashboard updating live with its connection state, and "follow" on a
// running job ending when the job finishes.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { btest, SHOTS } from '../lib/browser.mjs';
import { freePort, poll, sleep } from '../../e2e/lib/bridge.mjs';
import { ENV, recordPid, tmpPath } from '../../e2e/lib/env.mjs';

const ROOT = join(ENV.here, '..', '..');

// start scripts/run.sh in its own process group; stopped with SIGINT (Ctrl-C)
async function startDemo(t) {
  const port = await freePort();
  const logPath = tmpPath('demo-run.log');
  const fd = openSync(logPath, 'w');
  const env = { ...process.env, SSE_RUN_LISTEN: `127.0.0.1:${port}`, SSE_RUN_SKIP_BUILD: '1' };
  for (const v of ['PGHOST', 'PGPORT', 'PGDATABASE', 'SSE_PGDATA', 'SSE_PGBIN', 'SSE_PGDIR']) delete env[v];
  const proc = spawn(join(ROOT, 'scripts/run.sh'), [], { env, detached: true, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  recordPid(proc.pid);
  const exited = new Promise((r) => proc.once('exit', r));
  t.note(`make run log: ${logPath}`);
  t.defer(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      process.kill(-proc.pid, 'SIGINT');
      if (!(await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]))) {
        process.kill(-proc.pid, 'SIGKILL');
        throw new Error('make run still running 20 s after SIGINT');
      }
    }
  });
  const log = () => readFileSync(logPath, 'utf8');
  const url = await poll(() => {
    if (proc.exitCode !== null) throw new Error(`make run exited:\n${log().slice(-1500)}`);
    return /open (http:\/\/\S+)/.exec(log())?.[1];
  }, 'make run to print its URL', { timeoutMs: 60_000 });
  return { url, log };
}

const rowsOf = (page) => page.evaluate(() => [...document.querySelectorAll('#jobs tr')]
  .map((tr) => ({ name: tr.cells[0].textContent, state: tr.dataset.state })));
const conn = (page) => page.evaluate(() => document.getElementById('conn').textContent);

btest('make run: one URL; the dashboard shows jobs changing live and the connection state; follow ends at the job\'s close', async (t) => {
  const demo = await startDemo(t);
  assert.equal(demo.log().match(/https?:\/\//g).length, 1, `more than one URL:\n${demo.log()}`);
  assert.equal(demo.url, new URL(demo.url).origin + '/');
  const page = await t.page(demo.url);
  await poll(async () => (await conn(page)) === 'live', 'the page to be live');
  // a person sees jobs move: some job shows two different states over time
  const seen = new Map();
  await poll(async () => {
    for (const r of await rowsOf(page)) {
      if (!seen.has(r.name)) seen.set(r.name, new Set());
      seen.get(r.name).add(r.state);
    }
    return [...seen.values()].some((s) => s.size >= 2) && seen.size >= 3;
  }, 'three jobs, one of them changing state', { timeoutMs: 30_000 });
  // the printed command adds a job, as typed
  const lines = demo.log().split('\n').map((l) => l.trim());
  const exp = lines.find((l) => l.startsWith('export PGHOST='));
  const cmd = lines.find((l) => l.startsWith('psql '));
  assert.ok(exp, 'no export line printed');
  assert.ok(cmd, 'no psql command printed');
  // typed in another terminal: none of the test's own PG* variables
  const env = { ...process.env };
  for (const v of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE']) delete env[v];
  execFileSync('bash', ['-c', `${exp}\n${cmd}`], { stdio: 'ignore', timeout: 30_000, env });
  await poll(async () => (await rowsOf(page)).some((r) => r.name === 'my-job'), 'my-job on the page');
  await page.screenshot({ path: join(SHOTS, 'demo.png') });
  console.log(`    screenshot of the demo page: ${join(SHOTS, 'demo.png')}`);
  // follow a running job: its stream ends with the job (sse_close -> 204)
  const link = await poll(() => page.evaluate(() => {
    const tr = [...document.querySelectorAll('#jobs tr')].find((x) => x.dataset.state === 'running' && x.querySelector('a'));
    return tr ? tr.querySelector('a').getAttribute('href') : null;
  }), 'a running job with a follow link');
  const one = await t.page(new URL(link, demo.url).href);
  await poll(async () => (await conn(one)) === 'closed', 'the followed job to finish', { timeoutMs: 60_000 });
  const text = await one.evaluate(() => document.getElementById('log').textContent);
  assert.match(text, /close \(the job's stream is finished\)/);
  assert.match(text, /stopped: status 204/);
  const states = (await rowsOf(one)).map((r) => r.state);
  assert.equal(states.length, 1);
  assert.ok(['done', 'failed'].includes(states[0]), `followed job ended as ${states[0]}`);
  await one.screenshot({ path: join(SHOTS, 'demo-follow.png') });
  assert.equal(await conn(page), 'live', 'the dashboard stayed live');
});
