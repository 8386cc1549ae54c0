// sse_close(channel): streams naming the channel literally receive `close`
// and end; later requests get 204, which stops EventSource for good.
// Wildcard streams receive it as an ordinary event and stay open.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, publish, rows, sql, sqlValue } from '../lib/db.mjs';
import { curlStream, cStream, esStream, request } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';

const M = () => ENV.mainUrl;

test('close ends subscription streams (also through a non-matching filter); then 204, EventSource stops', async (t) => {
  const ch = `job.${uniq()}`;
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(ch)}])`);
  const idFiltered = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(ch)}], '{"state": "never"}')`);
  const es = esStream(`${M()}/events/${id}`);
  const c = cStream(`${M()}/events/${id}`);
  const cf = cStream(`${M()}/events/${idFiltered}`);
  for (const x of [es, c, cf]) t.defer(x.close);
  for (const x of [es, c, cf]) await x.waitReady();
  await publish([{ channel: ch, data: { state: 'running' }, asJson: true }, { channel: ch, data: { state: 'done' }, asJson: true }]);
  await sql(`SELECT sse_close(${lit(ch)});`);
  const all = await rows(`channel = ${lit(ch)}`);
  const closeRow = all[all.length - 1];
  assert.equal(closeRow.event, 'close', 'sse_close did not log a close event');
  // the C clients do not reconnect: the stream must end by itself after close
  for (const x of [c, cf]) {
    await x.waitFor((r) => r.ended, 'the stream to end after close');
    assert.equal(x.eofs, 1, `${x.kind} stream did not end cleanly`);
    const last = x.events[x.events.length - 1];
    assert.equal(last.event, 'close', `last event is ${last.event}`);
    assert.equal(last.id, closeRow.id);
  }
  assertSameEvents(c.rows(), all, 'subscription stream up to close');
  assertSameEvents(cf.rows(), [closeRow], 'filtered subscription gets only close');
  // EventSource reconnects after the end, gets 204 and stops
  await es.waitFor((r) => r.ended, 'EventSource to stop', 15_000);
  assert.equal(es.responses[es.responses.length - 1].status, 204, `statuses: ${es.responses.map((r) => r.status)}`);
  assert.equal(es.es.readyState, 2, 'EventSource is not CLOSED');
  assertSameEvents(es.rows(), all, 'EventSource up to close');
  for (const sid of [id, idFiltered]) {
    // EventSource's reconnect carries the close id: 204
    const res = await request(`${M()}/events/${sid}`, { headers: { 'Last-Event-ID': closeRow.id } });
    assert.equal(res.status, 204, `GET after close with Last-Event-ID ${closeRow.id}: ${res.status} ${res.body}`);
    assert.equal(res.body, '');
  }
  // without Last-Event-ID a subscription starts where it was created, so a
  // fresh page either gets 204 or the job's history ending in close, then the end
  const fresh = cStream(`${M()}/events/${id}`);
  t.defer(fresh.close);
  await fresh.waitEnded();
  if (fresh.status !== 204) {
    assert.equal(fresh.status, 200);
    assertSameEvents(fresh.rows(), all, 'fresh connection to a closed subscription');
  }
  // a reader still behind the close gets the rest, then close, then the end
  const behind = cStream(`${M()}/events/${id}`, { lastEventId: all[0].id });
  t.defer(behind.close);
  await behind.waitFor((r) => r.ended, 'the stream to end');
  assertSameEvents(behind.rows(), all.slice(1), 'reader behind the close');
});

test('close on a literal ad-hoc channel ends that stream; wildcard streams stay open; then 204', async (t) => {
  const base = `pub.${uniq()}`;
  const ch = `${base}.job`;
  const literal = curlStream(`${M()}/events?channel=${ch}`);
  const wild = curlStream(`${M()}/events?channel=${base}.*`);
  const both = cStream(`${M()}/events?channel=${ch}&channel=${base}.other`);
  for (const x of [literal, wild, both]) t.defer(x.close);
  for (const x of [literal, wild, both]) await x.waitReady();
  await publish([{ channel: ch, data: 'step' }]);
  await sql(`SELECT sse_close(${lit(ch)});`);
  const closeId = await sqlValue(`(SELECT max(id) FROM sse_bridge.events WHERE channel = ${lit(ch)})`);
  await literal.waitFor((r) => r.ended, 'the literal stream to end');
  assert.equal(literal.exit.code, 0, `curl exit ${JSON.stringify(literal.exit)} ${literal.log.join(' ')}`);
  assert.equal(literal.events[literal.events.length - 1].event, 'close');
  await both.waitFor((r) => r.ended, 'the stream listing the channel to end');
  await publish([{ channel: `${base}.more`, data: 'after close' }]);
  await wild.waitEvent((e) => e.data === 'after close', 'an event after close on the wildcard stream');
  assert.ok(!wild.ended, 'wildcard stream ended');
  assert.ok(wild.events.some((e) => e.event === 'close' && e.id === closeId), 'wildcard stream did not get close');
  const res = await request(`${M()}/events?channel=${ch}`);
  assert.equal(res.status, 204, `ad-hoc request for a closed channel: ${res.status} ${res.body}`);
  const es = esStream(`${M()}/events?channel=${ch}`);
  t.defer(es.close);
  await es.waitFor((r) => r.ended, 'EventSource to stop');
  assert.deepEqual(es.responses.map((r) => r.status), [204]);
  assert.equal(es.events.length, 0);
});

// The 204 decision follows positions: a close ends a subscription only when
// its channel is literally in the definition valid at the close's id.

// A subscription stream resuming after `after`: its status, and its rows once
// `count` of them arrived (it stays open).
async function resumeRows(t, id, after, count) {
  const st = cStream(`${M()}/events/${id}`, { lastEventId: after });
  t.defer(st.close);
  await st.waitFor((r) => r.status !== null || r.ended, 'a response');
  assert.equal(st.status, 200, `resume after ${after}: status ${st.status}`);
  await st.waitFor((r) => r.rows().length >= count, `${count} events after ${after}`);
  return st;
}

test('a close before a channel joined the subscription does not end it (live, and resumes after the close)', async (t) => {
  const tag = uniq();
  const a = `pa.${tag}`;
  const x = `px.${tag}`;
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(a)}])`);
  const live = cStream(`${M()}/events/${id}`);
  t.defer(live.close);
  await live.waitReady();
  await sql(`SELECT sse_close(${lit(x)});`);
  const closeId = await sqlValue(`(SELECT max(id) FROM sse_bridge.events WHERE channel = ${lit(x)} AND event = 'close')`);
  await sql(`SELECT sse_subscription_add(${lit(id)}, ARRAY[${lit(x)}]);`);
  await publish([{ channel: x, data: 'on x after the add' }, { channel: a, data: 'on a' }]);
  const want = await rows(`channel IN (${lit(a)}, ${lit(x)}) AND event IS DISTINCT FROM 'close'`);
  assert.equal(want.length, 2);
  await live.waitFor((r) => r.rows().length >= 2, 'both events on the live stream');
  assertSameEvents(live.rows(), want, 'live stream');
  assert.ok(!live.ended, 'the live stream ended');
  // readers at the close, after the add, and after the last event: 200, never 204
  const addId = await sqlValue(`(SELECT max(id) FROM sse_bridge.events WHERE channel = '$sub' AND id < ${want[0].id})`);
  for (const [after, rest] of [[closeId, want], [addId, want], [want[0].id, want.slice(1)]]) {
    const st = await resumeRows(t, id, after, rest.length);
    assertSameEvents(st.rows(), rest, `resume after ${after}`);
  }
  const st = cStream(`${M()}/events/${id}`, { lastEventId: want[1].id });
  t.defer(st.close);
  await st.waitReady();
  assert.equal(st.status, 200);
  await publish([{ channel: x, data: 'later on x' }]);
  const later = await rows(`channel = ${lit(x)} AND data = 'later on x'`);
  await st.waitFor((r) => r.rows().length >= 1, 'the later event');
  assertSameEvents(st.rows(), later, 'resume at the head, then live');
});

test('a close after a same-transaction add ends the subscription at the close, also once the channel is removed', async (t) => {
  const tag = uniq();
  const a = `qa.${tag}`;
  const x = `qx.${tag}`;
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(a)}])`);
  const live = cStream(`${M()}/events/${id}`);
  t.defer(live.close);
  await live.waitReady();
  // the add's marker is written before the close (changes come first)
  await sql(`BEGIN; SELECT sse_close(${lit(x)}); SELECT sse_subscription_add(${lit(id)}, ARRAY[${lit(x)}]); COMMIT;`);
  const closeRow = (await rows(`channel = ${lit(x)} AND event = 'close'`))[0];
  await live.waitEnded();
  assertSameEvents(live.rows(), [closeRow], 'the live stream: the close, then the end');
  assert.equal(await sqlValue(`(SELECT closed_at IS NULL FROM sse_bridge.subscriptions WHERE id = ${lit(id)})`), 'true',
    'sse_close marked the subscription closed: this test needs the close to be judged by position alone');
  await sql(`SELECT sse_subscription_remove(${lit(id)}, ARRAY[${lit(x)}]);`);
  await publish([{ channel: a, data: 'after the close' }]);
  const later = (await rows(`channel = ${lit(a)}`))[0];
  for (const after of [closeRow.id, later.id]) {
    const res = await request(`${M()}/events/${id}`, { headers: { 'Last-Event-ID': after } });
    assert.equal(res.status, 204, `resume after ${after} (the close is ${closeRow.id}): ${res.status} ${res.body}`);
  }
  // a reader before the close gets it, then the end
  const behind = cStream(`${M()}/events/${id}`, { lastEventId: Number(closeRow.id) - 1 });
  t.defer(behind.close);
  await behind.waitEnded();
  assertSameEvents(behind.rows(), [closeRow], 'reader just before the close');
});
