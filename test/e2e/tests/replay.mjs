// Replay from the log by Last-Event-ID (header and query parameter), and
// reconnecting clients losing nothing across a bridge restart.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, publish, rows } from '../lib/db.mjs';
import { curlStream, cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents, readyHead } from '../lib/expect.mjs';
import { startBridge, withBridge } from '../lib/bridge.mjs';

const M = () => ENV.mainUrl;

async function seed(ch, n) {
  const list = [];
  for (let i = 0; i < n; i++) {
    list.push({ channel: ch, data: { i, note: `event ${i}` }, asJson: true, event: i % 2 ? 'odd' : null });
  }
  await publish(list);
  return rows(`channel = ${lit(ch)}`);
}

// Replays then live events, for clients made by connect(url, lastId).
async function replayCase(t, how) {
  const ch = `pub.${uniq()}.replay`;
  const all = await seed(ch, 6);
  const from = all[1].id;
  const clients = how(ch, from);
  for (const c of clients) t.defer(c.close);
  for (const c of clients) {
    const ready = await c.waitReady();
    const readyIdx = c.events.indexOf(ready);
    assertSameEvents(c.events.slice(0, readyIdx), all.slice(2), `${c.kind} replay before ready`);
    assert.ok(readyHead(ready) >= Number(all[5].id), 'ready head below the replayed events');
  }
  await publish([{ channel: ch, data: 'live 1' }, { channel: ch, data: 'live 2', event: 'tick' }]);
  const want = await rows(`channel = ${lit(ch)} AND id > ${from}`);
  for (const c of clients) {
    await c.waitFor((r) => r.rows().length >= want.length, `${want.length} events`);
    assertSameEvents(c.rows(), want, c.kind);
  }
}

test('replay by Last-Event-ID header (curl, eventsource, C)', (t) => replayCase(t, (ch, from) => {
  const url = `${M()}/events?channel=${ch}`;
  return [
    curlStream(url, { headers: { 'Last-Event-ID': from } }),
    esStream(url, { lastEventId: from }),
    cStream(url, { lastEventId: from }),
  ];
}));

test('replay by lastEventId query parameter (curl, eventsource, C)', (t) => replayCase(t, (ch, from) => {
  const url = `${M()}/events?channel=${ch}&lastEventId=${from}`;
  return [curlStream(url), esStream(url), cStream(url)];
}));

test('Last-Event-ID 0 replays the whole retained history of a channel', async (t) => {
  const ch = `pub.${uniq()}.zero`;
  const all = await seed(ch, 3);
  const c = cStream(`${M()}/events?channel=${ch}`, { lastEventId: 0 });
  t.defer(c.close);
  await c.waitReady();
  assertSameEvents(c.rows(), all, 'replay from 0');
});

// A page reads from the row at the cursor (the timeline check) and bounds
// the rows after it by the room left in the client's queue: a cursor row
// larger than that room must not count, or the page holds nothing after it.
test('replay from an event larger than the client queue goes on after it (pages, not the cache)', async (t) => {
  const ch = `pub.${uniq()}.bigcursor`;
  await publish([{ channel: ch, data: 'x'.repeat(200_000) }]);
  const [big, ...after] = await seed(ch, 5);  // seed returns the channel's whole log
  assert.equal(after.length, 5);
  // started after the events: its cache starts at the head, so the replay reads pages
  const b = await withBridge(t, ['--public-channels', 'pub.#', '--client-queue', '64K']);
  const c = cStream(`${b.url}/events?channel=${ch}`, { lastEventId: big.id });
  t.defer(c.close);
  await c.waitReady();
  assertSameEvents(c.rows(), after, `replay after the large event ${big.id}`);
});

test('bridge restarted on the same port: EventSource and C client reconnect with Last-Event-ID, lose nothing', async (t) => {
  const ch = `pub.${uniq()}.reconnect`;
  const args = ['--public-channels', 'pub.#', '--retry', '200'];
  let b = await startBridge(args, { name: 'reconnect1' });
  t.defer(() => b.stop());
  t.note(`log: ${b.logPath}`);
  const url = `${b.url}/events?channel=${ch}`;
  const es = esStream(url);
  const c = cStream(url, { reconnect: 50, maxDelayMs: 200 });
  t.defer(es.close);
  t.defer(c.close);
  await es.waitReady();
  await c.waitReady();
  await publish([{ channel: ch, data: 'one' }, { channel: ch, data: 'two' }]);
  await es.waitFor((r) => r.rows().length >= 2, '2 events');
  await c.waitFor((r) => r.rows().length >= 2, '2 events');
  await b.stop('SIGTERM');
  await c.waitFor((r) => r.eofs >= 1, 'end of stream at shutdown');
  await publish([{ channel: ch, data: 'while down 1' }, { channel: ch, data: 'while\ndown 2', event: 'x' }]);
  b = await startBridge(args, { port: b.port, name: 'reconnect2' });
  t.note(`log: ${b.logPath}`);
  await publish([{ channel: ch, data: 'after restart' }]);
  const want = await rows(`channel = ${lit(ch)}`);
  for (const cl of [es, c]) {
    await cl.waitFor((r) => r.rows().length >= want.length, `${want.length} events`, 30_000);
    assertSameEvents(cl.rows(), want, cl.kind);
  }
  assert.ok(c.connects >= 2, 'the C client did not reconnect');
  const held = c.rows()[1].pos;
  assert.ok(/^[0-9]+-[0-9a-f]{8}$/.test(held), `event position ${held} is not <id>-<fp>`);
  assert.ok(c.log.some((l) => l === `connect Last-Event-ID=${held}`),
    `C client did not reconnect with Last-Event-ID ${held}: ${c.log.join(' | ')}`);
});
