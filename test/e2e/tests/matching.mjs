// Channel patterns (`*` one segment, `#` zero or more) and JSON filters, on
// ad-hoc and subscription streams, live and replayed. Expectations come
// from the database rows: patterns through an AMQP matcher written here,
// filters through PostgreSQL's own jsonb containment (e2e_filter_expect,
// created by setup.sql).
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { head, lit, publish, rows, sql, sqlValue } from '../lib/db.mjs';
import { curlStream, cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents, qs, topicMatch } from '../lib/expect.mjs';

const M = () => ENV.mainUrl;

function channelSet(base) {
  return [base, `${base}.a`, `${base}.b`, `${base}.a.x`, `${base}.a.y`, `${base}.b.x`, `${base}.a.x.y`,
    `${base}.c.d.e.x`, `${base}x`, `${base}.ax`];
}

async function publishAcross(channels, tag) {
  const list = [];
  channels.forEach((ch, i) => list.push({ channel: ch, data: { tag, i, ch }, asJson: true }));
  // a second round in reverse order, several per transaction
  await publish(list);
  await sql(`BEGIN;\n${[...channels].reverse().map((ch) => `SELECT sse_publish(${lit(ch)}, ${lit(`${tag} batch ${ch}`)}::text, 'batch');`).join('\n')}\nCOMMIT;`);
}

test('patterns on ad-hoc streams, live and replayed (curl live, C client replay)', async (t) => {
  const base = `pub.${uniq()}`;
  const patterns = [[base], [`${base}.*`], [`${base}.#`], [`${base}.*.x`], [`${base}.#.x`], [`${base}.a.#`],
    [`${base}.*.*`], [`${base}.#.x.#`], [`${base}.a.#`, `${base}.*.x`]];
  const h0 = await head();
  const url = (ps) => `${M()}/events?${qs(ps.map((p) => ['channel', p]))}`;
  const live = patterns.map((ps) => curlStream(url(ps)));
  for (const c of live) t.defer(c.close);
  for (const c of live) await c.waitReady();
  await publishAcross(channelSet(base), 'live');
  await publish([{ channel: `${base}.end`, data: 'end', event: 'end' }]);
  const all = await rows(`id > ${h0} AND (channel = ${lit(base)} OR channel LIKE ${lit(`${base}%`)})`);
  const expect = (ps) => all.filter((r) => ps.some((p) => topicMatch(p, r.channel)));
  // the end marker travels on base.end: every stream whose patterns match it waits for it,
  // the others are checked after the marker reached the rest
  for (const [i, ps] of patterns.entries()) {
    const want = expect(ps);
    await live[i].waitFor((r) => r.rows().length >= want.length, `${want.length} events for ${ps}`);
  }
  await Promise.all(live.map((c, i) => (expect(patterns[i]).some((r) => r.event === 'end')
    ? c.waitEvent((e) => e.event === 'end', 'end marker') : null)));
  for (const [i, ps] of patterns.entries()) assertSameEvents(live[i].rows(), expect(ps), `live ${ps.join('&')}`);
  for (const ps of patterns) {
    const c = cStream(`${url(ps)}&lastEventId=${h0}`);
    t.defer(c.close);
    await c.waitReady();
    assertSameEvents(c.rows(), expect(ps), `replay ${ps.join('&')}`);
  }
});

const FILTER_DATA = [
  { state: 'done', n: 1, tags: ['a', 'b'], meta: { owner: 'ann', level: 2 } },
  '{"state": "running", "n": 1.0, "tags": ["b"]}',
  { state: 'done', n: 2, tags: [] },
  [{ state: 'done' }],
  '"done"',
  'state=done',
  { state: 'done', meta: { owner: 'bob' } },
  '{"n": 1e0, "tags": ["a", "b", "a"]}',
  '<b class="state">done</b>',
  { nested: { deep: { x: [1, { y: 2 }] } } },
  '42',
  {},
  'line one\nstate: done',
];

// (a filter's arrays hold only scalars: {"x":[{"y":2}]} is refused with 400,
// see test/abuse/filters.mjs)
const FILTERS = [{}, { state: 'done' }, { n: 1 }, { tags: ['b', 'a'] }, { meta: { owner: 'ann' } },
  { nested: { deep: { x: [] } } }, { state: 'done', tags: ['a'] }, { tags: [] }, { missing: null }];

async function publishFilterData(ch) {
  await publish(FILTER_DATA.map((d) => (typeof d === 'string'
    ? { channel: ch, data: d } : { channel: ch, data: d, asJson: true })));
}

async function expectFiltered(where, filter) {
  return rows(`${where} AND e2e_filter_expect(${lit(JSON.stringify(filter))}::jsonb, data)`);
}

test('JSON filters on ad-hoc streams, live (curl) and replayed (eventsource)', async (t) => {
  const ch = `pub.${uniq()}.f`;
  const h0 = await head();
  const url = (f) => `${M()}/events?${qs([['channel', `${ch}.#`], ['filter', JSON.stringify(f)]])}`;
  const live = FILTERS.map((f) => curlStream(url(f)));
  for (const c of live) t.defer(c.close);
  for (const c of live) await c.waitReady();
  await publishFilterData(`${ch}.x`);
  await publish([{ channel: `${ch}.end`, data: { state: 'done', n: 1, tags: ['a', 'b'], meta: { owner: 'ann' }, nested: { deep: { x: [{ y: 2 }] } }, missing: null }, asJson: true, event: 'end' }]);
  const where = `id > ${h0} AND channel LIKE ${lit(`${ch}.%`)}`;
  for (const [i, f] of FILTERS.entries()) {
    const want = await expectFiltered(where, f);
    assert.ok(want.some((r) => r.event === 'end'), `the end marker must match ${JSON.stringify(f)}`);
    await live[i].waitEvent((e) => e.event === 'end', `end marker for filter ${JSON.stringify(f)}`);
    assertSameEvents(live[i].rows(), want, `live filter ${JSON.stringify(f)}`);
  }
  for (const f of FILTERS) {
    const es = esStream(`${url(f)}&lastEventId=${h0}`);
    t.defer(es.close);
    await es.waitReady();
    assertSameEvents(es.rows(), await expectFiltered(where, f), `replayed filter ${JSON.stringify(f)}`);
    await es.close();
  }
});

async function subscribe(patterns, filter = {}, ttl = '1 hour') {
  return sqlValue(`sse_subscribe_filter(ARRAY[${patterns.map(lit).join(',')}]::text[], ${lit(JSON.stringify(filter))}::jsonb, ${lit(ttl)}::interval)`);
}

async function subscriptionExpect(id) {
  const s = JSON.parse(await sqlValue(`(SELECT row_to_json(s) FROM sse_bridge.subscriptions s WHERE id = ${lit(id)})`));
  const cand = await rows(`id > ${s.start_id} AND e2e_filter_expect(${lit(JSON.stringify(s.filter))}::jsonb, data)`);
  return cand.filter((r) => s.channels.some((p) => topicMatch(p, r.channel)));
}

test('patterns and filters on subscription streams, connected after publishing (C, eventsource)', async (t) => {
  const u = uniq();
  const subs = [
    [[`sub.${u}.*.x`], {}],
    [[`sub.${u}.#`], { state: 'done' }],
    [['#.x', `other.${u}.#`], {}],
    [[`sub.${u}.a.#`, `sub.${u}.*.y`], { n: 1 }],
    [[`#.${u}`], {}],
  ];
  const ids = [];
  for (const [ps, f] of subs) ids.push(await subscribe(ps, f));
  const chans = [`sub.${u}.a.x`, `sub.${u}.b.x`, `sub.${u}.a.y`, `sub.${u}.a`, `other.${u}.x`, `other.${u}`, `sub.${u}`,
    `x.${u}`, `sub.${u}.a.b.y`];
  const list = [];
  chans.forEach((ch, i) => {
    list.push({ channel: ch, data: { state: i % 2 ? 'done' : 'running', n: 1, i }, asJson: true });
    list.push({ channel: ch, data: `text ${i}` });
  });
  await publish(list);
  const clients = ids.map((id, i) => (i % 2 ? esStream : cStream)(`${M()}/events/${id}`));
  for (const c of clients) t.defer(c.close);
  for (const [i, c] of clients.entries()) {
    await c.waitReady();
    assertSameEvents(c.rows(), await subscriptionExpect(ids[i]), `subscription ${JSON.stringify(subs[i])} before ready`);
  }
  await publish(list.map((e) => ({ ...e, event: 'again' })));
  for (const [i, c] of clients.entries()) {
    const want = await subscriptionExpect(ids[i]);
    await c.waitFor((r) => r.rows().length >= want.length, `${want.length} events`);
    assertSameEvents(c.rows(), want, `subscription ${JSON.stringify(subs[i])} live`);
  }
});

test('subscription changes made in SQL apply to a live stream', async (t) => {
  const u = uniq();
  const id = await subscribe([`sub.${u}.a`]);
  const c = cStream(`${M()}/events/${id}`);
  t.defer(c.close);
  await c.waitReady();
  await publish([{ channel: `sub.${u}.a`, data: { k: 1 }, asJson: true }, { channel: `sub.${u}.b`, data: { k: 1 }, asJson: true }]);
  await c.waitFor((r) => r.rows().length >= 1, 'first event');
  await sql(`SELECT sse_subscription_add(${lit(id)}, ARRAY[${lit(`sub.${u}.b`)}]);`);
  await publish([{ channel: `sub.${u}.b`, data: { k: 2 }, asJson: true }]);
  await c.waitFor((r) => r.rows().length >= 2, 'event on the added pattern');
  await sql(`SELECT sse_subscription_set_filter(${lit(id)}, '{"k": 3}');`);
  await publish([{ channel: `sub.${u}.a`, data: { k: 2 }, asJson: true }, { channel: `sub.${u}.b`, data: { k: 3 }, asJson: true }]);
  await c.waitFor((r) => r.rows().length >= 3, 'event through the new filter');
  await sql(`SELECT sse_subscription_remove(${lit(id)}, ARRAY[${lit(`sub.${u}.b`)}]);`);
  await publish([{ channel: `sub.${u}.b`, data: { k: 3 }, asJson: true }, { channel: `sub.${u}.a`, data: { k: 3, last: true }, asJson: true }]);
  await c.waitEvent((e) => e.data.includes('"last"'), 'last event');
  const all = await rows(`channel LIKE ${lit(`sub.${u}.%`)}`);
  // a: k1 yes; b: k1 no (not subscribed yet), b k2 yes; a k2 no (filter), b k3 yes;
  // b k3 no (removed), a k3 yes
  const want = [all[0], all[2], all[4], all[6]];
  assertSameEvents(c.rows(), want, 'live subscription changes');
});

test('subscription-change rows of the log ($sub) are never delivered, even to a "#" stream, live or replayed', async (t) => {
  const u = uniq();
  // markers carry {"state": "dropped"} for a dropped subscription: this filter
  // would let them through if the bridge treated them as events
  const id = await subscribe(['#'], { state: 'dropped' });
  const h0 = await head();
  const c = cStream(`${M()}/events/${id}`);
  t.defer(c.close);
  await c.waitReady();
  const other = await subscribe([`pub.${u}`]);
  await publish([{ channel: `pub.${u}`, data: { state: 'dropped', i: 1 }, asJson: true }]);
  await sql(`SELECT sse_unsubscribe(${lit(other)});`);
  await publish([{ channel: `pub.${u}`, data: { state: 'dropped', last: true }, asJson: true }]);
  await c.waitEvent((e) => e.data.includes('"last"'), 'last event');
  const markers = await rows(`id > ${h0} AND channel = '$sub'`);
  assert.ok(markers.length >= 2, 'the subscription changes are in the log');
  const want = await rows(`id > ${h0} AND channel = ${lit(`pub.${u}`)}`);
  assertSameEvents(c.rows(), want, 'live');
  const r = cStream(`${M()}/events/${id}`, { lastEventId: h0 });
  t.defer(r.close);
  await r.waitReady();
  assertSameEvents(r.rows(), want, 'replayed');
});
