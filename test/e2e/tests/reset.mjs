// Pruned history: a Last-Event-ID older than the oldest retained row gets
// `event: reset` first (saying which ids were lost), then the retained rows.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, conninfo, uniq } from '../lib/env.mjs';
import { lit, prunedThrough, publish, rows, sql } from '../lib/db.mjs';
import { curlStream, cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { poll, withBridge } from '../lib/bridge.mjs';

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

// A prune that overtakes a live subscription stream takes the markers in
// its gap with it.  The stream gets its reset and goes on in place (one
// response) with the definition valid after the gap: a channel added inside
// the pruned range is delivered afterwards.  The bridge is kept off the
// database (its role may not log in) while the gap is made, so its live
// link finds the prune mark above its cursor when it comes back.
test('a prune overtaking a live subscription stream: reset, then the definition valid after the gap, in the same response', async (t) => {
  const role = `sse_e2e_${uniq().toLowerCase()}`;
  await sql(`CREATE ROLE ${role} LOGIN;
    GRANT USAGE ON SCHEMA sse_bridge TO ${role};
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions,
                    sse_bridge.subscription_versions TO ${role};
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO ${role};`);
  t.defer(() => sql(`ALTER ROLE ${role} LOGIN;
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(role)};
    DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role};`).catch(() => {}));
  const b = await withBridge(t, ['--db', `${conninfo()} user=${role}`]);
  const chA = `gap.${uniq()}.a`, chB = `gap.${uniq()}.b`;
  const id = (await sql(`SELECT sse_subscribe_filter(ARRAY[${lit(chA)}]);`)).trim();
  const c = cStream(`${b.url}/events/${id}`);
  t.defer(c.close);
  await c.waitReady();
  await publish([{ channel: chA, data: 'before' }]);
  await c.waitFor((r) => r.rows().length >= 1, 'the event before the gap');

  await sql(`ALTER ROLE ${role} NOLOGIN;
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(role)};`);
  await poll(async () => (await sql(`SELECT count(*) FROM pg_stat_activity WHERE usename = ${lit(role)};`)).trim() === '0',
    'the bridge is off the database');
  await publish([{ channel: chA, data: 'gone 1' }]);
  await sql(`SELECT sse_subscription_add(${lit(id)}, ARRAY[${lit(chB)}]);`);
  await publish([{ channel: chB, data: 'gone 2' }]);
  await sql("SELECT sse_prune('0 seconds');");
  const pruned = await prunedThrough();
  await sql(`ALTER ROLE ${role} LOGIN;`);

  await c.waitFor((r) => r.events.some((e) => e.event === 'reset'), 'the reset', 30_000);
  await c.waitFor((r) => r.events.filter((e) => e.event === 'ready').length >= 2, 'live again', 30_000);
  await publish([{ channel: chB, data: 'after' }, { channel: chA, data: 'after a' }]);
  await c.waitFor((r) => r.rows().length >= 3, 'the events after the gap', 30_000);
  const reset = c.events.find((e) => e.event === 'reset');
  assert.equal(JSON.parse(reset.data).lost_through, pruned, `reset: ${reset.data}`);
  assert.deepEqual(c.rows().map((e) => e.data), ['before', 'after', 'after a']);
  assert.equal(c.connects, 1, 'one request: the response went on');
  assert.equal(c.eofs, 0, 'the response never ended');
  assert.ok(!c.ended, 'the stream ended');
});
