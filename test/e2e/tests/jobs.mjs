// The job pattern: a subscription handed to a page before the job starts
// publishing (through sse_notify_trigger on a jobs table) must deliver all
// of the job's events, however late the page connects.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, rows, sql, sqlValue } from '../lib/db.mjs';
import { cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { poll } from '../lib/bridge.mjs';

const M = () => ENV.mainUrl;

// workMs: time the job spends between its steps (a job doing some work)
function jobScript(name, steps, workMs = 0) {
  const s = [`INSERT INTO e2e_jobs (name, state, progress) VALUES (${lit(name)}, 'queued', 0);`];
  s.push(`UPDATE e2e_jobs SET state = 'running' WHERE name = ${lit(name)};`);
  for (let i = 1; i <= steps; i++) {
    if (workMs) s.push(`SELECT pg_sleep(${workMs / 1000});`);
    s.push(`UPDATE e2e_jobs SET progress = ${Math.round((100 * i) / steps)} WHERE name = ${lit(name)};`);
  }
  s.push(`UPDATE e2e_jobs SET state = 'done' WHERE name = ${lit(name)};`);
  s.push(`SELECT sse_close('job.' || ${lit(name)});`);
  return s.join('\n');
}

test('a subscription created before a job publishes receives all of its events (page connects later)', async (t) => {
  const name = uniq('job');
  const ch = `job.${name}`;
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(ch)}])`);
  await sql(jobScript(name, 5));
  const want = await rows(`channel = ${lit(ch)}`);
  assert.deepEqual(want.map((r) => r.event), ['insert', 'update', 'update', 'update', 'update', 'update', 'update', 'update', 'close'],
    'events logged by the trigger');
  const row = JSON.parse(want[want.length - 2].data);
  assert.equal(row.name, name);
  assert.equal(row.state, 'done');
  const es = esStream(`${M()}/events/${id}`);
  const c = cStream(`${M()}/events/${id}`);
  t.defer(es.close);
  t.defer(c.close);
  await c.waitEnded();
  assertSameEvents(c.rows(), want, 'C client');
  await es.waitFor((r) => r.ended, 'EventSource to stop after close');
  assertSameEvents(es.rows(), want, 'EventSource');
  assert.deepEqual(es.responses.map((r) => r.status), [200, 204]);
});

test('a job publishing while its page connects: every event exactly once, then close', async (t) => {
  const name = uniq('job');
  const ch = `job.${name}`;
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(ch)}])`);
  const p = spawn('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', ENV.db, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (b) => { err += b; });
  const finished = new Promise((resolve) => p.on('close', resolve));
  p.stdin.end(jobScript(name, 300, 5));
  await poll(async () => Number(await sqlValue(`(SELECT count(*) FROM sse_bridge.events WHERE channel = ${lit(ch)})`)) > 3,
    'the job to start publishing');
  const c = cStream(`${M()}/events/${id}`);
  const es = esStream(`${M()}/events/${id}`);
  t.defer(c.close);
  t.defer(es.close);
  await c.waitFor((r) => r.responses.length > 0, 'the C client to get its answer');
  t.note(`job still running when the page connected: ${p.exitCode === null}`);
  assert.equal(await finished, 0, `job failed: ${err}`);
  await c.waitEnded(30_000);
  await es.waitFor((r) => r.ended, 'EventSource to stop after close', 30_000);
  const want = await rows(`channel = ${lit(ch)}`);
  assert.equal(want.length, 304);
  assertSameEvents(c.rows(), want, 'C client');
  assertSameEvents(es.rows(), want, 'EventSource');
});
