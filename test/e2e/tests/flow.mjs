// Flow control: keepalive comments on idle streams, and slow clients that
// exceed --client-queue: dropped, then replayed in full from the log.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { uniq } from '../lib/env.mjs';
import { lit, publish, rows, sql } from '../lib/db.mjs';
import { curlStream, cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { findMetric, metrics, metricValue, sleep, withBridge } from '../lib/bridge.mjs';

test('keepalive comment after --keepalive seconds without traffic; retry: from --retry', async (t) => {
  const b = await withBridge(t, ['--public-channels', 'pub.#', '--keepalive', '1', '--retry', '1234']);
  const url = `${b.url}/events?channel=pub.${uniq()}`;
  const c = cStream(url);
  const curl = curlStream(url);
  t.defer(c.close);
  t.defer(curl.close);
  await c.waitReady();
  const tReady = Date.now();
  assert.deepEqual(c.retries, [1234], 'retry: line');
  await c.waitFor((r) => r.comments.length >= 2, 'two keepalive comments', 8000);
  const first = c.comments[0].t - tReady;
  assert.ok(first >= 700, `first keepalive only ${first} ms after ready (--keepalive 1)`);
  assert.ok(!c.ended && c.events.length === 1, 'keepalives must not be events');
  await curl.waitFor((r) => r.comments.length >= 1, 'a keepalive comment through curl', 5000);
  assert.match(curl.raw, /(^|\n):[^\n]*\n/, 'no comment line on the wire');
  assert.match(curl.raw, /^retry: ?1234\r?\n/);
});

test('slow client over --client-queue is dropped, reconnects with Last-Event-ID and replays in full', async (t) => {
  const b = await withBridge(t, ['--public-channels', 'pub.#', '--client-queue', '65536', '--retry', '100']);
  const ch = `pub.${uniq()}.slow`;
  const url = `${b.url}/events?channel=${ch}`;
  // stops reading right after `ready`, with a small socket receive buffer
  const slow = cStream(url, { rcvbuf: 4096, pauseAfter: 1, reconnect: 5, maxDelayMs: 100 });
  const fast = esStream(url);
  t.defer(slow.close);
  t.defer(fast.close);
  await slow.waitFor((r) => r.paused, 'the slow client to stop reading');
  await fast.waitReady();
  const { list: m0 } = await metrics(b.url);
  const drops = findMetric(m0, [/slow|drop/]);
  assert.ok(drops, `no slow-client drop metric in /metrics: ${m0.map((m) => m.name).join(', ')}`);
  const base = metricValue(m0, drops.name);
  // 32 kB per step (below the queue limit, so a reader that keeps up is never
  // over it), paced by the fast client, until the bridge reports a drop
  const payload = 'z'.repeat(16_000);
  let sent = 0;
  let dropped = false;
  for (let step = 0; step < 400 && !dropped; step++) {
    await sql(`BEGIN;\n${[0, 1].map((i) => `SELECT sse_publish(${lit(ch)}, ${lit(`${step}/${i} ${payload}`)}::text);`).join('\n')}\nCOMMIT;`);
    sent += 2 * payload.length;
    await fast.waitFor((r) => r.rows().length >= 2 * (step + 1), `step ${step} at the fast client`);
    dropped = metricValue((await metrics(b.url)).list, drops.name) > base;
  }
  assert.ok(dropped, `no slow-client drop after ${sent} bytes with --client-queue 65536`);
  t.note(`dropped after ${sent} bytes`);
  slow.signal('SIGUSR1');
  await publish([{ channel: ch, data: 'end', event: 'end' }]);
  const want = await rows(`channel = ${lit(ch)}`);
  await fast.waitEvent((e) => e.event === 'end', 'the end marker (fast client)', 30_000);
  await slow.waitEvent((e) => e.event === 'end', 'the end marker (slow client)', 60_000);
  assertSameEvents(slow.rows(), want, 'slow client, across the drop');
  assertSameEvents(fast.rows(), want, 'fast client on the same bridge');
  assert.ok(slow.eofs >= 1 && slow.connects >= 2, `slow client was not disconnected: ${slow.log.join(' | ')}`);
  assert.equal(fast.connects, 1, 'the fast client was disconnected too');
});
