// The README's commands, run as a newcomer types them, in order: every
// fenced block of README.md carries a marker comment saying how it is run
// (a block without one fails the test), and its ports are replaced by free
// ones (8080: the bridge of `make run`, 8000: the page server).
//
//   <!-- test: demo -->            `make run ...`: started (the previous one stopped)
//   <!-- test: self -->            `make test`: this test is part of it
//   <!-- test: shell -->           run to the end in the "second terminal":
//                                  the export line `make run` printed, then the
//                                  variables the earlier blocks set
//   <!-- test: file NAME -->       saved as NAME in the page directory
//   <!-- test: background -->      started in the page directory, left running
//   <!-- test: open -->            run; the URL it prints is opened in Chromium
//   <!-- test: stream EVENT [JSON] -->   run (curl -N); must receive an EVENT
//                                  event, each one's data containing JSON
//   <!-- test: module EVENT [JSON] -->   a module script on a page of the page
//                                  server; must console.log an EVENT's data,
//                                  each containing JSON
//
// Then what the prose promises: the page shows exactly the items the README
// quotes, and the page opened with an unknown subscription shows the
// rejection of `ready` the README quotes. Also: no URL in the README or the
// docs written here has a raw '#' in its query.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { btest } from '../lib/browser.mjs';
import { freePort, poll, sleep } from '../../e2e/lib/bridge.mjs';
import { ENV, recordPid, tmpPath } from '../../e2e/lib/env.mjs';
import { SseParser } from '../../lib/sse.mjs';

const ROOT = join(ENV.here, '..', '..');
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

// The fenced blocks with their markers; every fence must have one.
function blocks(text) {
  const out = [];
  const fence = /^```(\w*)\n([\s\S]*?)^```$/gm;
  let m;
  while ((m = fence.exec(text))) {
    const before = text.slice(0, m.index).trimEnd();
    const mk = /<!-- test: (\w+)(?: (.*?))? -->$/.exec(before);
    assert.ok(mk, `README block without a test marker:\n${m[0].slice(0, 300)}`);
    out.push({ kind: mk[1], arg: mk[2] || '', lang: m[1], body: m[2] });
  }
  return out;
}

// flat containment, enough for the README's filters
const contains = (data, want) => Object.entries(want).every(([k, v]) => data != null && data[k] === v);

const cleanEnv = () => {
  const env = { ...process.env };
  for (const v of ['PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE', 'PGPASSWORD', 'SSE_PGDATA', 'SSE_PGBIN', 'SSE_PGDIR']) delete env[v];
  return env;
};

// SSE events of a curl -N output (its body)
function sseEvents(out) {
  const evs = [];
  const p = new SseParser({ onEvent: (e) => evs.push(e) });
  p.feed(out);
  return evs;
}

btest('README and docs: no URL with a raw "#" in its query (a fragment, never sent)', async () => {
  for (const f of ['README.md', 'docs/browser.md', 'docs/operations.md', 'docs/sql.md', 'docs/security.md',
    'docs/guarantees.md', 'docs/testing.md', 'docs/benchmarks.md', 'docs/auth.md']) {
    const text = readFileSync(join(ROOT, f), 'utf8');
    const bad = text.match(/(?:https?:\/\/[^\s'"`)]*|\/events)\?[^\s'"`)]*#[^\s'"`)]*/g) || [];
    assert.deepEqual(bad, [], `${f}: write '#' as %23 in a URL`);
  }
});

btest('README: every command as typed: make run, the five-minute path (own table, trigger, subscription, page with the helper, curl), channels and filters', async (t) => {
  const list = blocks(README);
  const dir = tmpPath('readme');
  mkdirSync(dir, { recursive: true });
  const state = join(dir, '.state.sh');
  writeFileSync(state, '');
  let bport = await freePort();
  const pport = await freePort();
  const sub = (s) => s.replace(/\b8080\b/g, String(bport)).replace(/\b8000\b/g, String(pport));
  const procs = [];
  let demo = null;
  const streams = [];
  const pages = [];
  let n = 0;

  // a process group of our own; stopped with SIGINT (Ctrl-C) at the end
  const startGroup = (script, name, { cwd = dir, env = cleanEnv() } = {}) => {
    const logPath = join(dir, `${name}.log`);
    const fd = openSync(logPath, 'w');
    const efd = openSync(`${logPath}.err`, 'w');
    const proc = spawn('bash', ['-c', script], { cwd, env, detached: true, stdio: ['ignore', fd, name.startsWith('stream') ? efd : fd] });
    closeSync(fd);
    closeSync(efd);
    recordPid(proc.pid);
    const exited = new Promise((r) => proc.once('exit', r));
    const p = { proc, exited, log: () => readFileSync(logPath, 'utf8'), logPath,
      stop: async () => {
        if (proc.exitCode !== null || proc.signalCode !== null) return;
        try { process.kill(-proc.pid, 'SIGINT'); } catch { return; }
        if (!(await Promise.race([exited.then(() => true), sleep(20_000).then(() => false)]))) {
          process.kill(-proc.pid, 'SIGKILL');
          throw new Error(`${name} still running 20 s after SIGINT`);
        }
      } };
    procs.push(p);
    t.note(`${name}: ${logPath}`);
    return p;
  };
  t.defer(async () => {
    for (const p of procs.reverse()) await p.stop().catch(() => {});
  });
  // every stream started so far got its events, each matching what the README promises
  const checkStreams = async () => {
    while (streams.length) {
      const s = streams.shift();
      const got = await poll(() => {
        const evs = s.p ? sseEvents(s.p.log()).filter((e) => e.event === s.event).map((e) => JSON.parse(e.data)) : s.logged;
        return evs.length > 0 && evs;
      }, `an ${s.event} event from: ${s.body.trim()}`, { timeoutMs: 30_000 });
      if (s.want) for (const d of got) assert.ok(contains(d, s.want), `${s.body.trim()}: ${JSON.stringify(d)} does not contain ${JSON.stringify(s.want)}`);
    }
  };
  // a block in the second terminal: the state of the earlier ones, then the block
  const inShell = (body) => `set -eo pipefail; set -a; . ${state}\n${sub(body)}`;

  for (const b of list) {
    n++;
    if (b.kind === 'self') {
      assert.match(b.body, /^(make test\b.*\n)+$/, 'a "self" block holds only make test');
    } else if (['deb', 'debsql', 'debunit'].includes(b.kind)) {
      // the Debian install: run in a clean chroot by test/deb, not here
    } else if (b.kind === 'demo') {
      assert.match(b.body, /^make run\b[^\n]*\n$/, 'a demo block is one make run line');
      await checkStreams(); // those of the previous demo, before it stops
      if (demo) await demo.p.stop();
      bport = await freePort();
      const env = { ...cleanEnv(), SSE_RUN_LISTEN: `127.0.0.1:${bport}`, SSE_RUN_SKIP_BUILD: '1' };
      demo = { p: startGroup(sub(b.body), `demo${n}`, { cwd: ROOT, env }) };
      const log = await poll(() => {
        if (demo.p.proc.exitCode !== null) throw new Error(`make run exited:\n${demo.p.log().slice(-1500)}`);
        return /Ctrl-C stops/.test(demo.p.log()) && demo.p.log();
      }, 'make run to print its banner', { timeoutMs: 90_000 });
      assert.ok(log.includes(`open http://127.0.0.1:${bport}/`), 'the page URL');
      const exp = log.split('\n').map((l) => l.trim()).find((l) => l.startsWith('export PGHOST='));
      assert.ok(exp, 'make run printed no export line');
      writeFileSync(state, `${exp}\n`);
    } else if (b.kind === 'shell' || b.kind === 'open') {
      const out = execFileSync('bash', ['-c', `${inShell(b.body)}\nexport -p > ${state}.new`],
        { cwd: dir, env: cleanEnv(), encoding: 'utf8', timeout: 60_000 });
      writeFileSync(state, readFileSync(`${state}.new`, 'utf8'));
      if (b.kind === 'open') {
        const url = out.trim().split('\n').pop();
        assert.match(url, /^http:\/\//, `the open block printed no URL: ${out}`);
        const page = await t.page(url);
        pages.push({ url, page });
      }
    } else if (b.kind === 'file') {
      writeFileSync(join(dir, b.arg), sub(b.body));
    } else if (b.kind === 'background') {
      const p = startGroup(inShell(b.body), `background${n}`);
      await poll(async () => {
        if (p.proc.exitCode !== null) throw new Error(`exited: ${p.log()}`);
        return (await fetch(`http://127.0.0.1:${pport}/`).catch(() => null))?.ok;
      }, `the background command to serve port ${pport}`);
    } else if (b.kind === 'stream') {
      const [event, json] = b.arg.split(/ (.*)/s);
      const p = startGroup(inShell(b.body), `stream${n}`);
      streams.push({ p, event, want: json ? JSON.parse(json) : null, body: b.body });
    } else if (b.kind === 'module') {
      const [event, json] = b.arg.split(/ (.*)/s);
      writeFileSync(join(dir, `module${n}.html`), `<!doctype html><script type="module">\n${sub(b.body)}</script>\n`);
      const logged = [];
      const page = await t.page();
      page.on('console', async (msg) => {
        const args = await Promise.all(msg.args().map((a) => a.jsonValue().catch(() => null)));
        logged.push(args[0]);
      });
      await page.goto(`http://127.0.0.1:${pport}/module${n}.html`, { waitUntil: 'load' });
      streams.push({ logged, event, want: json ? JSON.parse(json) : null, body: b.body });
    } else {
      assert.fail(`unknown marker kind ${b.kind}`);
    }
  }

  await checkStreams();
  // the page shows what the README says it shows
  const flat = README.replace(/\n/g, ' ');
  const listed = /The page lists((?:\s+(?:and\s+)?`[^`]+`,?)+)/.exec(flat)?.[1];
  assert.ok(listed, 'the README no longer says what the page lists');
  const items = [...listed.matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  assert.equal(pages.length, 1, 'one page opened');
  const { page, url } = pages[0];
  const texts = () => page.evaluate(() => [...document.querySelectorAll('#orders li')].map((li) => li.textContent));
  await poll(async () => (await texts()).length >= items.length, `${items.length} items on the page`, { timeoutMs: 30_000 });
  await sleep(500); // nothing more than promised arrives on its heels
  assert.deepEqual(await texts(), items);
  assert.equal(await page.evaluate(() => document.getElementById('state').textContent), 'live');
  // an unknown subscription: ready rejects, the page says so
  const rejected = /and `ready` rejects:\s+`([^`]+)`/.exec(flat)?.[1];
  assert.ok(rejected, 'the README no longer quotes the rejection');
  const bad = await t.page(url.replace(/sub=[^&]*/, 'sub=00000000-0000-4000-8000-000000000000'));
  await poll(async () => (await bad.evaluate(() => document.getElementById('state').textContent)) === rejected,
    `the page to show "${rejected}"`);
}, { timeout: 400_000 });
