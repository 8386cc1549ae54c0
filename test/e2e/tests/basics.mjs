// Headers, the opening of a stream and the ready promise.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { head, lit, publish, rows, sql } from '../lib/db.mjs';
import { curlStream, cStream, esStream, request } from '../lib/clients.mjs';
import { assertSameEvents, readyHead } from '../lib/expect.mjs';

const M = () => ENV.mainUrl;

test('/healthz answers 200 while the database link is up', async () => {
  const res = await request(`${M()}/healthz`);
  assert.equal(res.status, 200);
});

test('stream headers, retry line first, ready carries the head id (curl)', async (t) => {
  const ch = `pub.${uniq()}.hdr`;
  await publish([{ channel: ch, data: 'before' }]);
  const h0 = await head();
  const c = curlStream(`${M()}/events?channel=${ch}`);
  t.defer(c.close);
  const ready = await c.waitReady();
  assert.equal(c.status, 200);
  assert.equal(c.headers['content-type']?.toLowerCase().replace(/\s+/g, ''), 'text/event-stream;charset=utf-8',
    `Content-Type: ${c.headers['content-type']}`);
  assert.equal(c.headers['cache-control'], 'no-cache');
  assert.equal(c.headers['x-accel-buffering'], 'no');
  assert.match(c.raw, /^retry: ?\d+\r?\n/, `stream does not open with a retry line: ${JSON.stringify(c.raw.slice(0, 80))}`);
  assert.deepEqual(c.retries.slice(0, 1), [ENV.mainRetryMs], 'retry value differs from --retry');
  assert.equal(readyHead(ready), h0, 'head id in ready data');
  assert.deepEqual(c.rows(), [], 'an ad-hoc stream without Last-Event-ID starts at the head');
});

test('ready promise: an event committed right after ready arrives (curl, eventsource, C)', async (t) => {
  const ch = `pub.${uniq()}.ready`;
  const url = `${M()}/events?channel=${ch}`;
  const clients = [];
  // each client connects, and the moment it reports ready an event commits
  for (const make of [curlStream, esStream, cStream]) {
    const c = make(url);
    t.defer(c.close);
    clients.push(c);
    await c.waitReady();
    await publish([{ channel: ch, data: `after ready of ${c.kind}` }]);
  }
  const all = await rows(`channel = ${lit(ch)}`);
  assert.equal(all.length, 3);
  for (const [i, c] of clients.entries()) {
    const h = readyHead(c.events.find((e) => e.event === 'ready'));
    assert.ok(h < Number(all[i].id), `${c.kind}: ready head ${h} is not below the event published after it`);
    await c.waitFor((r) => r.rows().length >= 3 - i, `${3 - i} events`);
    assertSameEvents(c.rows(), all.slice(i), c.kind);
  }
});

// Publish n events on ch, one transaction each, in the background.
function backgroundPublisher(ch, n) {
  const stmts = [];
  for (let i = 0; i < n; i++) stmts.push(`SELECT sse_publish(${lit(ch)}, ${lit(JSON.stringify({ i }))}::text);`);
  const p = spawn('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', ENV.db, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let err = '';
  p.stderr.on('data', (b) => { err += b; });
  p.stdin.end(stmts.join('\n'));
  return new Promise((resolve, reject) => {
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`publisher failed: ${err}`))));
  });
}

test('ready promise under concurrent commits: nothing after ready is missed', async (t) => {
  const ch = `pub.${uniq()}.race`;
  const url = `${M()}/events?channel=${ch}`;
  const done = backgroundPublisher(ch, 600);
  const clients = [];
  let finished = false;
  done.then(() => { finished = true; }, () => { finished = true; });
  // connect clients one after another while the publisher runs
  for (const make of [cStream, esStream, curlStream, cStream, esStream, curlStream]) {
    if (finished) break;
    const c = make(url);
    t.defer(c.close);
    clients.push(c);
    await c.waitReady();
  }
  await done;
  await publish([{ channel: ch, data: 'end', event: 'end' }]);
  assert.ok(clients.length >= 2, 'the publisher finished before two clients connected');
  for (const c of clients) {
    await c.waitEvent((e) => e.event === 'end', 'the end marker');
    const readyIdx = c.events.findIndex((e) => e.event === 'ready');
    const h = readyHead(c.events[readyIdx]);
    const before = c.events.slice(0, readyIdx).filter((e) => e.event !== 'reset');
    for (const e of before) assert.ok(Number(e.id) <= h, `${c.kind}: event ${e.id} before ready is above its head ${h}`);
    const after = c.events.slice(readyIdx + 1);
    assertSameEvents(after, await rows(`channel = ${lit(ch)} AND id > ${h}`), `${c.kind} after ready(head ${h})`);
  }
  t.note(`connected ${clients.length} clients during the run`);
});
