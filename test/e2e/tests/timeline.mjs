// Timelines: the log replaced under a running bridge by the restore of an
// older dump.  Positions are "<id>-<fingerprint>"; a stream or a resume
// point on the dead timeline gets a timeline reset and never an event of
// the dead timeline; a position both timelines share resumes exactly.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from '../lib/harness.mjs';
import { ENV, tmpPath, uniq } from '../lib/env.mjs';
import { lit, publish, sql, sqlJson } from '../lib/db.mjs';
import { cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { healthz, poll, withBridge } from '../lib/bridge.mjs';
import { EventSource } from 'eventsource';

// The browser helper (client/sse-bridge.js) on the npm EventSource.
async function helperStream(url) {
  globalThis.EventSource ??= EventSource;
  const { SseBridge } = await import('../../../client/sse-bridge.js');
  const h = { events: [], resets: [] };
  h.s = new SseBridge(url, { onReset: (r) => h.resets.push(r) });
  h.s.on('message', (e) => h.events.push({ pos: e.lastEventId, id: e.lastEventId.split('-')[0], event: 'message', data: e.data }));
  h.close = () => h.s.close();
  return h;
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const err = [];
    p.stderr.on('data', (b) => err.push(b));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(
      `${cmd} ${args.join(' ')} failed (${code}): ${Buffer.concat(err).toString().trim()}`))));
  });
}

// Log rows of one database, as rows() returns them.
function rowsOf(db, ch) {
  return sqlJson(`SELECT coalesce(json_agg(json_build_object(
                    'id', id::text, 'channel', channel, 'event', event, 'data', data) ORDER BY id), '[]')
                  FROM sse_bridge.events WHERE channel = ${lit(ch)}`, { db });
}

const after = (events, i) => events.slice(i + 1).filter((e) => e.event !== 'ready' && e.event !== 'reset');
const isTimelineReset = (e) => e.event === 'reset' && JSON.parse(e.data).timeline === true;

test('timeline: restore of an older dump under a running bridge resets, never replays the dead log', async (t) => {
  const db = uniq('e2e_tl_');
  const ch = `tl.${uniq()}`;
  const url = (b) => `${b.url}/events?channel=${ch}`;
  const conn = `host=${process.env.PGHOST} port=${process.env.PGPORT} user=${process.env.PGUSER || 'postgres'} dbname=${db}`;
  await sql(`CREATE DATABASE ${db};`, { db: 'postgres' });
  t.defer(() => sql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE);`, { db: 'postgres' }));
  await sql('CREATE EXTENSION sse_bridge;', { db });
  const b = await withBridge(t, ['--db', conn, '--public-channels', 'tl.#', '--poll-interval', '500']);

  // 1. 50 events, then the dump
  await sql(Array.from({ length: 50 }, (_, i) => `SELECT sse_publish(${lit(ch)}, 'kept ${i + 1}');`).join('\n'), { db });
  const dump = tmpPath(`${db}.dump`);
  await run('pg_dump', ['-Fc', '-f', dump, '-d', conn]);

  // 2. 50 more with clients connected
  const clients = [cStream(url(b)), esStream(url(b))];
  for (const c of clients) t.defer(c.close);
  const helper = await helperStream(url(b));
  t.defer(helper.close);
  await helper.s.ready;
  const readies = [];
  for (const c of clients) readies.push(await c.waitReady());
  const at50 = readies[0].pos;
  assert.match(at50, /^50-[0-9a-f]{8}$/, 'ready at 50 carries <id>-<fingerprint>');
  await sql(Array.from({ length: 50 }, (_, i) => `SELECT sse_publish(${lit(ch)}, 'dead ${i + 51}');`).join('\n'), { db });
  for (const c of clients) await c.waitFor((r) => r.rows().length >= 50, '50 live events before the restore');
  const dead75 = clients[0].rows()[24].pos;
  assert.match(dead75, /^75-[0-9a-f]{8}$/);

  // 3. replace the database with the dump; 4. publish 60 new (ids 51..110)
  await sql(`DROP DATABASE ${db} WITH (FORCE);`, { db: 'postgres' });
  await sql(`CREATE DATABASE ${db};`, { db: 'postgres' });
  await run('pg_restore', ['--exit-on-error', '--single-transaction', '-d', conn, dump]);
  await sql(Array.from({ length: 60 }, (_, i) => `SELECT sse_publish(${lit(ch)}, 'new ${i + 51}');`).join('\n'), { db });
  const all = await rowsOf(db, ch);
  assert.equal(all.length, 110);
  assert.equal(all[50].id, '51');
  assert.equal(all[109].id, '110');
  const fresh = all.slice(50);

  // the connected streams: one timeline reset naming 50, then exactly the 60 new events
  for (const c of clients) {
    await c.waitFor((r) => r.events.some(isTimelineReset), 'a timeline reset', 40_000);
    const i = c.events.findIndex(isTimelineReset);
    const reset = c.events[i];
    assert.equal(reset.pos, at50, `${c.kind}: the reset re-bases at the shared position 50`);
    assert.deepEqual(JSON.parse(reset.data), { lost_from: 51, lost_through: 100, timeline: true });
    await c.waitFor((r) => after(r.events, i).length >= 60, '60 new events after the reset', 30_000);
    assertSameEvents(after(c.events, i), fresh, `${c.kind} after the reset`);
    assert.equal(c.events.filter((e) => e.event === 'reset').length, 1, `${c.kind}: one reset`);
  }

  // the browser helper re-bases on the timeline reset: it delivers the new
  // 51..110 although it had seen 51..100 of the dead timeline
  await poll(() => helper.events.length >= 110, 'the helper to deliver 50 dead + 60 new events', { timeoutMs: 30_000 });
  assert.deepEqual(helper.resets, [{ lost_from: 51, lost_through: 100, timeline: true }]);
  assertSameEvents(helper.events.slice(50), fresh, 'helper after the reset');
  assert.equal(helper.s.stats.duplicates, 0, 'the helper dropped events of the new timeline as duplicates');
  assert.equal(helper.s.lastEventId, helper.events[109].pos);

  // opens need the work link, which may still be in its reconnect backoff (503)
  await poll(async () => (await healthz(b.url)) === 200, '/healthz 200 after the restore', { timeoutMs: 15_000 });

  // a replay from the position held at 50 (and from a plain 50): exactly the 60 new ones
  for (const from of [at50, '50']) {
    const r = cStream(url(b), { lastEventId: from });
    t.defer(r.close);
    await r.waitReady();
    assert.ok(!r.events.some((e) => e.event === 'reset'), `resume from ${from}: no reset`);
    assertSameEvents(r.rows(), fresh, `replay from ${from}`);
  }

  // a replay from a position of the dead timeline: a timeline reset, then
  // the current timeline from the oldest retained row, never a dead event
  const d = cStream(url(b), { lastEventId: dead75 });
  t.defer(d.close);
  await d.waitReady();
  assert.ok(isTimelineReset(d.events[0]), `resume from ${dead75}: first a timeline reset, got ${d.events[0]?.event}`);
  assert.equal(d.events[0].pos, '0-0');
  assert.deepEqual(JSON.parse(d.events[0].data), { lost_from: 1, lost_through: 75, timeline: true });
  assertSameEvents(d.rows(), all, `replay from ${dead75}`);
  assert.ok(!d.rows().some((e) => e.data.startsWith('dead')), 'an event of the dead timeline was replayed');

  // the same after a prune into the range the client holds from the dead
  // timeline (51..100): the fork point is unknown, so the reset voids all it
  // holds (ids from 1), never only what is above the prune mark -- its dead
  // 51..80 would stand -- and a prune reset follows
  await sql(`SET sse_bridge.retention_max_events = 30; SELECT sse_prune('100 years');`, { db });
  assert.equal((await sqlJson('SELECT pruned_through FROM sse_bridge.meta', { db })), 80);
  const dead100 = clients[0].rows()[49].pos;
  assert.match(dead100, /^100-[0-9a-f]{8}$/);
  const p = cStream(url(b), { lastEventId: dead100 });
  t.defer(p.close);
  await p.waitReady();
  assert.ok(isTimelineReset(p.events[0]), `resume from ${dead100} after the prune: first a timeline reset`);
  assert.equal(p.events[0].pos, '0-0');
  assert.deepEqual(JSON.parse(p.events[0].data), { lost_from: 1, lost_through: 100, timeline: true });
  assert.equal(p.events[1].event, 'reset');
  assert.deepEqual(JSON.parse(p.events[1].data), { lost_from: 1, lost_through: 80 });
  assertSameEvents(p.rows(), all.slice(80), `replay from ${dead100} after the prune`);
});

// The live check when no cached row is left unchanged: the bridge is kept
// off the database (its role may not log in) while an older dump is
// restored, new events are published and a prune cuts into the range the
// client holds from the dead timeline.  Back on the database, the row at
// its cursor differs and none of its cached rows is in the new log as it
// was: the fork point is unknown, so the stream re-bases at 0 (voiding all
// it holds), gets a prune reset, then the retained rows -- not a reset at
// the prune mark that would leave its dead 51..80 standing.
test('timeline: replaced and pruned while the bridge was away: the live stream re-bases at 0, then a prune reset', async (t) => {
  const db = uniq('e2e_tl_');
  const ch = `tl.${uniq()}`;
  const role = `sse_e2e_${uniq().toLowerCase()}`;
  const grants = `GRANT USAGE ON SCHEMA sse_bridge TO ${role};
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions,
                    sse_bridge.subscription_versions TO ${role};
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO ${role};`;
  await sql(`CREATE ROLE ${role} LOGIN;`, { db: 'postgres' });
  t.defer(() => sql(`ALTER ROLE ${role} LOGIN;
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(role)};
    DROP DATABASE IF EXISTS ${db} WITH (FORCE); DROP ROLE IF EXISTS ${role};`, { db: 'postgres' }).catch(() => {}));
  await sql(`CREATE DATABASE ${db};`, { db: 'postgres' });
  await sql(`CREATE EXTENSION sse_bridge; ${grants}`, { db });
  const conn = (user) => `host=${process.env.PGHOST} port=${process.env.PGPORT} user=${user} dbname=${db}`;
  const b = await withBridge(t, ['--db', conn(role), '--public-channels', 'tl.#', '--poll-interval', '500']);
  const admin = conn(process.env.PGUSER || 'postgres');

  await sql(Array.from({ length: 50 }, (_, i) => `SELECT sse_publish(${lit(ch)}, 'kept ${i + 1}');`).join('\n'), { db });
  const dump = tmpPath(`${db}.dump`);
  await run('pg_dump', ['-Fc', '-f', dump, '-d', admin]);
  const c = cStream(`${b.url}/events?channel=${ch}`);
  t.defer(c.close);
  await c.waitReady();
  await sql(Array.from({ length: 50 }, (_, i) => `SELECT sse_publish(${lit(ch)}, 'dead ${i + 51}');`).join('\n'), { db });
  await c.waitFor((r) => r.rows().length >= 50, '50 live events before the restore');

  await sql(`ALTER ROLE ${role} NOLOGIN;`, { db: 'postgres' });
  await sql(`DROP DATABASE ${db} WITH (FORCE);`, { db: 'postgres' });
  await poll(async () => (await sql(`SELECT count(*) FROM pg_stat_activity WHERE usename = ${lit(role)};`, { db: 'postgres' })).trim() === '0',
    'the bridge is off the database');
  await sql(`CREATE DATABASE ${db};`, { db: 'postgres' });
  await run('pg_restore', ['--exit-on-error', '--single-transaction', '-d', admin, dump]);
  await sql(Array.from({ length: 60 }, (_, i) => `SELECT sse_publish(${lit(ch)}, 'new ${i + 51}');`).join('\n'), { db });
  await sql(`SET sse_bridge.retention_max_events = 30; SELECT sse_prune('100 years');`, { db });
  assert.equal(await sqlJson('SELECT pruned_through FROM sse_bridge.meta', { db }), 80);
  const all = await rowsOf(db, ch);
  await sql(`ALTER ROLE ${role} LOGIN;`, { db: 'postgres' });

  await c.waitFor((r) => r.events.some(isTimelineReset), 'a timeline reset', 40_000);
  const i = c.events.findIndex(isTimelineReset);
  assert.equal(c.events[i].pos, '0-0', 'the fork point is unknown: re-based at 0');
  assert.deepEqual(JSON.parse(c.events[i].data), { lost_from: 1, lost_through: 100, timeline: true });
  await c.waitFor((r) => after(r.events, i).length >= 30, 'the 30 retained events after the resets', 30_000);
  const next = c.events[i + 1];
  assert.equal(next.event, 'reset');
  assert.deepEqual(JSON.parse(next.data), { lost_from: 1, lost_through: 80 });
  assertSameEvents(after(c.events, i), all, 'after the resets');
  assert.ok(!after(c.events, i).some((e) => e.data.startsWith('dead')), 'an event of the dead timeline after the reset');
});

test('timeline: the browser helper compares positions by their numeric part and re-bases on ready/reset', async () => {
  const { SseBridge } = await import('../../../client/sse-bridge.js');
  class FakeSource {
    static CLOSED = 2;
    constructor(url) {
      this.url = url;
      this.readyState = 1;
      this.listeners = {};
      FakeSource.last = this;
    }
    addEventListener(type, fn) { (this.listeners[type] ??= []).push(fn); }
    close() { this.readyState = 2; }
    emit(type, lastEventId, data = '{}') {
      for (const fn of this.listeners[type] || []) fn({ type, lastEventId, data });
    }
  }
  const saved = globalThis.EventSource;
  globalThis.EventSource = FakeSource;
  let s;
  try {
    s = new SseBridge('http://127.0.0.1:9/events?channel=a', { lastEventId: '7-0a0b0c0d' });
  } finally {
    globalThis.EventSource = saved;
  }
  const got = [];
  const resets = [];
  s.on('message', (e) => got.push(e.lastEventId));
  s.options.onReset = (r) => resets.push(r);
  const es = FakeSource.last;
  assert.match(es.url, /lastEventId=7-0a0b0c0d/);
  es.emit('ready', '10-aaaaaaaa', '{"head":10}');
  es.emit('message', '11-bbbbbbbb');
  es.emit('message', '11-bbbbbbbb');          // repeated
  es.emit('message', '9-cccccccc');           // below the last one
  es.emit('message', '100-0');                // a position without a row is still a position
  es.emit('reset', '50-dddddddd', '{"lost_from":51,"lost_through":100,"timeline":true}');
  assert.equal(s.lastEventId, '50-dddddddd', 'the reset re-bases downwards');
  es.emit('message', '51-eeeeeeee');           // the new timeline's 51
  es.emit('message', '51-eeeeeeee');
  assert.deepEqual(got, ['11-bbbbbbbb', '100-0', '51-eeeeeeee']);
  assert.equal(s.stats.duplicates, 3);
  assert.deepEqual(resets, [{ lost_from: 51, lost_through: 100, timeline: true }]);
  assert.equal(s.lastEventId, '51-eeeeeeee');
  s.close();
});
