// Pruned history: a Last-Event-ID older than the oldest retained row gets
// `event: reset` first (saying which ids were lost), then the retained rows.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, prunedThrough, publish, rows, sql } from '../lib/db.mjs';
import { curlStream, cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';

const M = () => ENV.mainUrl;

function numbersIn(v, out = []) {
  if (typeof v === 'number') out.push(v);
  else if (typeof v === 'string' && /^\d+$/.test(v)) out.push(Number(v));
  else if (v && typeof v === 'object') for (const x of Object.values(v)) numbersIn(x, out);
  return out;
}

test('reset: prune everything, reconnect with an old id -> event: reset first, then the retained rows', async (t) => {
  const ch = `pub.${uniq()}.reset`;
  await publish([1, 2, 3].map((i) => ({ channel: ch, data: `old ${i}` })));
  const old = await rows(`channel = ${lit(ch)}`);
  await sql("SELECT sse_prune('0 seconds');");
  const pruned = await prunedThrough();
  assert.ok(pruned >= Number(old[2].id), `pruned_through ${pruned} is below the pruned rows`);
  assert.equal((await rows(`channel = ${lit(ch)}`)).length, 0, 'sse_prune left rows behind');
  await publish([{ channel: ch, data: 'new 1' }, { channel: ch, data: 'new\n2', event: 'n' }]);
  const kept = await rows(`channel = ${lit(ch)}`);
  const from = old[0].id;
  const url = `${M()}/events?channel=${ch}`;
  const clients = [curlStream(url, { headers: { 'Last-Event-ID': from } }), esStream(url, { lastEventId: from }),
    cStream(`${url}&lastEventId=${from}`)];
  for (const c of clients) t.defer(c.close);
  for (const c of clients) {
    const ready = await c.waitReady();
    assert.equal(c.events[0].event, 'reset', `${c.kind}: first event is ${c.events[0].event}, not reset`);
    assert.equal(c.events.filter((e) => e.event === 'reset').length, 1, 'more than one reset');
    let info;
    try {
      info = JSON.parse(c.events[0].data);
    } catch {
      assert.fail(`reset data is not JSON: ${c.events[0].data}`);
    }
    const nums = numbersIn(info);
    assert.ok(nums.includes(Number(from) + 1) && nums.includes(pruned),
      `reset data should name the lost ids ${Number(from) + 1}..${pruned}: ${c.events[0].data}`);
    assertSameEvents(c.events.slice(1, c.events.indexOf(ready)), kept, `${c.kind} after reset`);
  }
  await publish([{ channel: ch, data: 'live after reset' }]);
  const all = await rows(`channel = ${lit(ch)}`);
  for (const c of clients) {
    await c.waitFor((r) => r.rows().length >= all.length, `${all.length} events`);
    assertSameEvents(c.rows(), all, `${c.kind} continues`);
  }
  // a client already past the pruned range gets no reset
  const fresh = cStream(url, { lastEventId: pruned });
  t.defer(fresh.close);
  await fresh.waitReady();
  assert.ok(!fresh.events.some((e) => e.event === 'reset'), 'reset sent to a client that lost nothing');
  assertSameEvents(fresh.rows(), all, 'from pruned_through');
});

test('reset on a subscription whose start point was pruned', async (t) => {
  const ch = `job.${uniq()}`;
  const id = (await sql(`SELECT sse_subscribe_filter(ARRAY[${lit(ch)}]);`)).trim();
  await publish([{ channel: ch, data: 'lost 1' }, { channel: ch, data: 'lost 2' }]);
  await sql("SELECT sse_prune('0 seconds');");
  const pruned = await prunedThrough();
  await publish([{ channel: ch, data: 'kept' }]);
  const c = cStream(`${M()}/events/${id}`);
  t.defer(c.close);
  await c.waitReady();
  assert.equal(c.events[0].event, 'reset', `first event is ${c.events[0].event}, not reset`);
  assert.ok(numbersIn(JSON.parse(c.events[0].data)).includes(pruned), `reset data: ${c.events[0].data}`);
  assertSameEvents(c.rows(), await rows(`channel = ${lit(ch)}`), 'after reset');
});
