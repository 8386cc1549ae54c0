// Subscription changes take effect at their position in the log: every
// event after a change's marker is judged by the new definition, every
// event before it by the old one, for live streams and replays alike.
// The expected sequence of each stream is computed from the log itself, by
// following the subscription's `$sub` markers by position (expectedFor).
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, rows, sql, sqlJson, sqlValue } from '../lib/db.mjs';
import { cStream, esStream, request } from '../lib/clients.mjs';
import { startBridge } from '../lib/bridge.mjs';
import { assertSameEvents, topicMatch } from '../lib/expect.mjs';

const M = () => ENV.mainUrl;

// jsonb containment (data @> filter) for the values these tests publish.
function contains(val, sub) {
  if (sub === null || typeof sub !== 'object') {
    return val === sub || (typeof val === 'number' && typeof sub === 'number' && val === sub);
  }
  if (Array.isArray(sub)) {
    return Array.isArray(val) && sub.every((s) => val.some((v) => contains(v, s)));
  }
  if (val === null || typeof val !== 'object' || Array.isArray(val)) return false;
  return Object.entries(sub).every(([k, s]) => k in val && contains(val[k], s));
}

function matches(def, r) {
  if (!def.channels.some((p) => topicMatch(p, r.channel))) return false;
  let data;
  try {
    data = JSON.parse(r.data);
  } catch {
    return Object.keys(def.filter).length === 0;
  }
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return Object.keys(def.filter).length === 0;
  return contains(data, def.filter);
}

// What a stream of subscription sid resuming after `after` must receive,
// through the log row `through` (inclusive): the definition valid at
// `after`, then each row judged by the newest marker of sid before it.
async function expectedFor(sid, after, through) {
  let def = await sqlJson(`(SELECT json_build_object('channels', channels, 'filter', filter, 'state', state)
                            FROM sse_bridge.subscription_versions
                            WHERE sid = ${sid} AND from_id <= ${after} ORDER BY from_id DESC LIMIT 1)`);
  const out = [];
  for (const r of await rows(`id > ${after} AND id <= ${through}`)) {
    if (r.channel === '$sub') {
      const d = JSON.parse(r.data);
      if (d.sid === sid) def = d;
      if (d.sid === sid && d.state !== 'active') break;
      continue;
    }
    if (!def || !matches(def, r)) continue;
    out.push(r);
    if (r.event === 'close' && def.channels.includes(r.channel)) break;
  }
  return out;
}

async function subscribe(channels, filter = {}) {
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${channels.map(lit).join(',')}], ${lit(JSON.stringify(filter))})`);
  const sid = Number(await sqlValue(`(SELECT sid FROM sse_bridge.subscriptions WHERE id = ${lit(id)})`));
  const start = Number(await sqlValue(`(SELECT start_id FROM sse_bridge.subscriptions WHERE id = ${lit(id)})`));
  return { id, sid, start };
}

const pub = (ch, data) => `SELECT sse_publish(${lit(ch)}, ${lit(JSON.stringify(data))}::jsonb);`;

// Publish a sentinel on a channel the subscription always has and wait for
// it: everything before it was dispatched.  Returns the sentinel's id.
async function sentinel(streams, ch, data = { sentinel: true }) {
  await sql(pub(ch, data));
  const id = await sqlValue(`(SELECT max(id) FROM sse_bridge.events WHERE channel = ${lit(ch)})`);
  for (const s of streams) await s.waitEvent((e) => e.id === id, `sentinel ${id}`, 60_000);
  return Number(id);
}

test('subscription_add then publish (200 trials apart, 200 in one transaction): nothing lost', async (t) => {
  const tag = uniq();
  const subs = [];
  for (let k = 0; k < 4; k++) subs.push(await subscribe([`base.${tag}.${k}`]));
  const streams = subs.map((s) => cStream(`${M()}/events/${s.id}`));
  for (const s of streams) t.defer(s.close);
  for (const s of streams) await s.waitReady();
  const lines = [];
  for (let n = 0; n < 400; n++) {
    const s = subs[n % 4];
    const ch = `new.${tag}.t${n}`;
    const add = `SELECT sse_subscription_add(${lit(s.id)}, ARRAY[${lit(ch)}]);`;
    if (n < 200) lines.push(add, pub(ch, { n }));
    else lines.push('BEGIN;', add, pub(ch, { n }), 'COMMIT;');
  }
  await sql(lines.join('\n'));
  const lost = { apart: 0, oneTx: 0 };
  const wants = [];
  for (let k = 0; k < 4; k++) {
    const through = await sentinel([streams[k]], `base.${tag}.${k}`);
    const want = await expectedFor(subs[k].sid, subs[k].start, through);
    assert.equal(want.length, 101, `expected 100 trial events and the sentinel for subscription ${k}`);
    const got = new Set(streams[k].rows().map((e) => String(e.id)));
    for (const w of want) {
      if (!got.has(String(w.id)) && !JSON.parse(w.data).sentinel) lost[JSON.parse(w.data).n < 200 ? 'apart' : 'oneTx']++;
    }
    wants.push(want);
  }
  console.log(`    subscription_add trials: lost ${lost.apart} of 200 apart, ${lost.oneTx} of 200 in one transaction`);
  for (let k = 0; k < 4; k++) assertSameEvents(streams[k].rows(), wants[k], `subscription ${k}`);
  assert.deepEqual(lost, { apart: 0, oneTx: 0 });
});

test('subscription_remove then publish: nothing after the remove, everything before; unsubscribe ends the stream', async (t) => {
  const tag = uniq();
  const n = 100;
  const chans = Array.from({ length: n }, (_, k) => `rm.${tag}.c${k}`);
  const s = await subscribe([`base.${tag}`, ...chans]);
  const st = cStream(`${M()}/events/${s.id}`);
  t.defer(st.close);
  await st.waitReady();
  const lines = [];
  for (let k = 0; k < n; k++) {
    const rm = `SELECT sse_subscription_remove(${lit(s.id)}, ARRAY[${lit(chans[k])}]);`;
    const body = [pub(chans[k], { k, before: true }), rm, pub(chans[k], { k, before: false })];
    if (k % 2) lines.push('BEGIN;', ...body, 'COMMIT;');
    else lines.push(...body);
    // a remove in the same transaction as the event: the event is judged by the new definition
    if (k % 10 === 9) lines.push('BEGIN;', pub(chans[k], { k, sameTx: true }), 'COMMIT;');
  }
  lines.push(pub(`base.${tag}`, { last: true }), `SELECT sse_unsubscribe(${lit(s.id)});`, pub(`base.${tag}`, { dropped: true }));
  await sql(lines.join('\n'));
  await st.waitEnded(60_000);
  const through = Number(await sqlValue(`(SELECT max(id) FROM sse_bridge.events)`));
  const want = await expectedFor(s.sid, s.start, through);
  // a change in the same transaction as an event comes first: in the odd
  // (one-transaction) trials even the "before" event is judged by the remove
  assert.equal(want.length, n / 2 + 1, 'the before event of each separate trial, and the last base event');
  assert.ok(want.every((r) => !JSON.parse(r.data).dropped && JSON.parse(r.data).before !== false &&
    !JSON.parse(r.data).sameTx));
  assertSameEvents(st.rows(), want, 'events up to each remove, none after');
});

test('set_filter racing publishes: each event judged by the filter valid at its position', async (t) => {
  const tag = uniq();
  const ch = `flt.${tag}`;
  const s = await subscribe([`base.${tag}`, ch], { v: 0 });
  const st = cStream(`${M()}/events/${s.id}`);
  t.defer(st.close);
  await st.waitReady();
  const lines = [];
  for (let k = 0; k < 300; k++) {
    const set = `SELECT sse_subscription_set_filter(${lit(s.id)}, ${lit(JSON.stringify({ v: (k + 1) % 2 }))}::jsonb);`;
    const evs = [pub(ch, { v: 0, k }), pub(ch, { v: 1, k })];
    if (k % 3 === 0) lines.push('BEGIN;', set, ...evs, 'COMMIT;');
    else if (k % 3 === 1) lines.push('BEGIN;', evs[0], set, evs[1], 'COMMIT;');
    else lines.push(evs[0], set, evs[1]);
  }
  await sql(lines.join('\n'));
  const through = await sentinel([st], `base.${tag}`, { v: 0, sentinel: true });	// the last filter is {"v": 0}
  const want = await expectedFor(s.sid, s.start, through);
  assert.ok(want.length > 250, `only ${want.length} expected`);
  assertSameEvents(st.rows(), want, 'filtered by position');
});

test('replay from an old Last-Event-ID uses the definitions valid then (replay cache and log pages)', async (t) => {
  const tag = uniq();
  const chA = `ra.${tag}`;
  const chB = `rb.${tag}`;
  const s = await subscribe([`base.${tag}`, chA], { v: 1 });
  const lines = [];
  for (let k = 0; k < 60; k++) {
    lines.push(pub(chA, { v: k % 2, k }), pub(chB, { v: k % 2, k }));
    if (k === 15) lines.push(`SELECT sse_subscription_add(${lit(s.id)}, ARRAY[${lit(chB)}]);`);
    if (k === 30) lines.push(`SELECT sse_subscription_set_filter(${lit(s.id)}, '{"v": 0}'::jsonb);`);
    if (k === 45) lines.push(`SELECT sse_subscription_remove(${lit(s.id)}, ARRAY[${lit(chA)}]);`);
  }
  await sql(lines.join('\n'));
  const through = Number(await sqlValue(`(SELECT max(id) FROM sse_bridge.events WHERE channel = ${lit(chB)})`));
  // resume points: its creation, inside each definition
  const points = [s.start];
  for (const k of [10, 20, 40, 50]) {
    points.push(Number(await sqlValue(`(SELECT min(id) FROM sse_bridge.events WHERE channel = ${lit(chA)} AND data::jsonb @> '{"k": ${k}}')`)));
  }
  const fresh = await startBridge([]);	// an empty replay cache: replays read log pages
  t.defer(() => fresh.stop());
  for (const url of [M(), fresh.url]) {
    for (const after of points) {
      const st = cStream(`${url}/events/${s.id}`, { lastEventId: after });
      t.defer(st.close);
      await st.waitReady(30_000);
      const want = await expectedFor(s.sid, after, through);
      assert.ok(want.length > 0);
      assertSameEvents(st.rows().filter((e) => Number(e.id) <= through), want,
        `replay after ${after} from ${url === M() ? 'the replay cache' : 'log pages'}`);
    }
  }
});

test('close on a wildcard filtered stream obeys the filter; literal streams still end', async (t) => {
  const tag = uniq();
  const ch = `job.${tag}`;
  const wild = await subscribe(['job.*'], { state: 'done' });
  const literal = await subscribe([ch], { state: 'done' });
  const w = cStream(`${M()}/events/${wild.id}`);
  const l = cStream(`${M()}/events/${literal.id}`);
  const adhoc = cStream(`${M()}/events?channel=job.*&filter=${encodeURIComponent('{"state":"done"}')}`);
  for (const x of [w, l, adhoc]) t.defer(x.close);
  for (const x of [w, l, adhoc]) await x.waitReady();
  await sql([pub(ch, { state: 'running' }), pub(ch, { state: 'done' }),
    `WITH f AS (SELECT ${lit(ch)} AS name) SELECT sse_close(name) FROM f;`].join('\n'));
  const all = await rows(`channel = ${lit(ch)}`);
  assert.equal(all[2].event, 'close');
  await l.waitEnded();
  assertSameEvents(l.rows(), [all[1], all[2]], 'literal filtered stream: the done event, then close');
  // a later event on another job: every close before it was dispatched
  const other = `job.${uniq()}`;
  await sql(pub(other, { state: 'done' }));
  const last = await rows(`channel = ${lit(other)}`);
  for (const x of [w, adhoc]) {
    await x.waitEvent((e) => e.id === last[0].id, 'the later event');
    assert.ok(!x.ended, 'the wildcard stream ended');
    const mine = x.rows().filter((e) => [ch, other].some((c) => all.concat(last).some((r) => r.id === e.id && r.channel === c)));
    assertSameEvents(mine, [all[1], last[0]], `${x === w ? 'subscription' : 'ad hoc'} job.* filtered to done: no close`);
  }
});

test('unsubscribe: a reader behind the drop replays up to it and ends; at or after the drop, or new: 404', async (t) => {
  const tag = uniq();
  const ch = `un.${tag}`;
  const s = await subscribe([ch, `un.${tag}.other`], { keep: true });
  await sql([pub(ch, { keep: true, n: 1 }), pub(ch, { keep: false, n: 2 }), pub(ch, { keep: true, n: 3 })].join('\n'));
  await sql(`SELECT sse_subscription_set_filter(${lit(s.id)}, '{"keep": false}'::jsonb);`);
  await sql([pub(ch, { keep: true, n: 4 }), pub(ch, { keep: false, n: 5 })].join('\n'));
  await sql(`SELECT sse_unsubscribe(${lit(s.id)});`);
  await sql([pub(ch, { keep: true, n: 6 }), pub(ch, { keep: false, n: 7 })].join('\n'));
  const evs = await rows(`channel = ${lit(ch)}`);
  const drop = Number(await sqlValue(`(SELECT max(id) FROM sse_bridge.events WHERE channel = '$sub' AND data::jsonb @> '{"sid": ${s.sid}, "state": "dropped"}')`));
  assert.ok(drop > Number(evs[4].id) && drop < Number(evs[5].id), 'the drop marker lies between n 5 and n 6');
  const fresh = await startBridge([]);	// an empty replay cache: the replay reads log pages
  t.defer(() => fresh.stop());
  for (const url of [M(), fresh.url]) {
    const where = url === M() ? 'replay cache' : 'log pages';
    for (const after of [s.start, Number(evs[0].id), Number(evs[2].id)]) {
      // each event judged by the definition valid at its position, none after the drop
      const want = await expectedFor(s.sid, after, drop);
      assert.ok(want.length > 0 && want.every((r) => JSON.parse(r.data).n <= 5));
      const st = cStream(`${url}/events/${s.id}`, { lastEventId: after, reconnect: 3, maxDelayMs: 200 });
      t.defer(st.close);
      await st.waitEnded(30_000);
      assertSameEvents(st.rows(), want, `reader after ${after} (${where})`);
      // the end names the drop as its position, so the reconnect gets 404, not the same replay again
      assert.deepEqual(st.responses.map((r) => r.status), [200, 404], `statuses after ${after} (${where}): ${st.log.join(' | ')}`);
      const last = st.events[st.events.length - 1];
      assert.equal(last.event, 'ready');
      assert.equal(Number(last.id), drop, `the last position sent is the drop marker (${where})`);
    }
    for (const lastEventId of [drop, Number(evs[6].id)]) {
      const res = await request(`${url}/events/${s.id}`, { headers: { 'Last-Event-ID': String(lastEventId) } });
      assert.equal(res.status, 404, `resume after ${lastEventId}, the drop is ${drop} (${where}): ${res.status} ${res.body}`);
    }
    const res = await request(`${url}/events/${s.id}`);
    assert.equal(res.status, 404, `a new reader of a dropped subscription (${where}): ${res.status} ${res.body}`);
  }
  // EventSource (npm) takes the end's position as its Last-Event-ID and stops at the 404
  const es = esStream(`${M()}/events/${s.id}`, { lastEventId: evs[0].id });
  t.defer(es.close);
  await es.waitFor((r) => r.ended, 'EventSource to stop', 15_000);
  assert.deepEqual(es.responses.map((r) => r.status), [200, 404]);
  assertSameEvents(es.rows(), await expectedFor(s.sid, Number(evs[0].id), drop), 'EventSource behind the drop');
});
