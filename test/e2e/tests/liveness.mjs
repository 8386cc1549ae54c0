// A hung database is noticed, and the log does not grow forever.
//
// Stalls: the bridge's backends stopped with SIGSTOP (the kernel still
// answers for their sockets, so only an application-level deadline can
// notice), or a lock held on one of the bridge's tables.  In both cases
// /healthz must answer 503 within a bounded time, an open during the stall
// must get 503 with Retry-After at once, and every event committed during
// the stall must reach an open stream exactly once, in order, afterwards.
//
// Retention: the bridge calls sse_prune on a timer when its role may, and
// says clearly when it may not.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { conninfo, uniq } from '../lib/env.mjs';
import { lit, publishSql, rows, sql, sqlValue } from '../lib/db.mjs';
import { cStream, request } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { findMetric, healthz, metrics, metricValue, poll, withBridge } from '../lib/bridge.mjs';

const DB_TIMEOUT_S = 2;
// The heartbeat runs every half deadline and then has a deadline to
// answer: 1.5 deadlines, plus slack for a loaded machine.
const DETECT_BOUND_MS = 2 * DB_TIMEOUT_S * 1000 + 2000;
// An open is answered within one deadline (at once while the link is down).
const OPEN_BOUND_MS = DB_TIMEOUT_S * 1000 + 1000;

function appName(tag) {
  return `sse_e2e_${tag}_${uniq()}`;
}

async function backendPids(app) {
  const out = await sql(`SELECT pid FROM pg_stat_activity WHERE application_name = ${lit(app)};`);
  return out.split('\n').filter(Boolean).map(Number);
}

// A role for one bridge, so that the stall can also keep it from logging
// in again (as when the whole server hangs); dropped at the end.
async function bridgeRole(t) {
  const role = `sse_e2e_${uniq().toLowerCase()}`;
  await sql(`CREATE ROLE ${role} LOGIN;
    GRANT USAGE ON SCHEMA sse_bridge TO ${role};
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions,
                    sse_bridge.subscription_versions TO ${role};
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO ${role};`);
  t.defer(() => sql(`ALTER ROLE ${role} LOGIN;
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(role)};
    DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role};`).catch(() => {}));
  return role;
}

// SIGSTOP the bridge's backends and keep it from logging in again until
// release(), which sends SIGCONT to each (also from t.defer, so a failing
// test never leaves a stopped backend behind).
async function stopBackends(t, app, role) {
  const stopped = [];
  const release = async () => {
    for (const pid of stopped.splice(0)) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // gone already
      }
    }
    await sql(`ALTER ROLE ${role} LOGIN;`);
  };
  t.defer(release);
  await sql(`ALTER ROLE ${role} NOLOGIN;`);
  for (const pid of await backendPids(app)) {
    process.kill(pid, 'SIGSTOP');
    stopped.push(pid);
  }
  assert.equal(stopped.length, 2, 'the bridge has two database sessions');
  return release;
}

// An open during the stall: 503 with Retry-After, quickly.
async function assertOpenRefused(url, what) {
  const t0 = Date.now();
  const res = await request(url, { timeoutMs: 15_000 });
  const ms = Date.now() - t0;
  assert.equal(res.status, 503, `${what}: an open during the stall answered ${res.status}`);
  assert.ok(res.headers['retry-after'], `${what}: the 503 has no Retry-After`);
  assert.ok(ms <= OPEN_BOUND_MS, `${what}: the open took ${ms} ms (bound ${OPEN_BOUND_MS} ms)`);
  return ms;
}

async function timeoutMetric(b) {
  const { list } = await metrics(b.url);
  const m = findMetric(list, [/db/, /timeout/]);
  assert.ok(m, `no database timeout metric: ${list.map((x) => x.name).join(', ')}`);
  return metricValue(list, m.name);
}

async function stallBridge(t, tag, role = null) {
  const app = appName(tag);
  const b = await withBridge(t, ['--db', `${conninfo()} application_name=${app}${role ? ` user=${role}` : ''}`,
    '--db-timeout', String(DB_TIMEOUT_S), '--public-channels', 'pub.#']);
  const ch = `pub.${uniq()}.${tag}`;
  const url = `${b.url}/events?channel=${ch}`;
  const c = cStream(url);
  t.defer(c.close);
  await c.waitReady();
  await sql(publishSql(ch, 'before'));
  await c.waitFor((r) => r.rows().length >= 1, 'the event before the stall');
  // checked after the stall: a bridge without the metric fails there
  return { app, b, ch, url, c, timeouts0: await timeoutMetric(b).catch(() => 0) };
}

// After the stall: healthy again, every event exactly once and in order.
async function assertRecovered(t, s, what) {
  await poll(async () => (await healthz(s.b.url)) === 200, `${what}: /healthz 200 after the stall`, { timeoutMs: 30_000 });
  await sql(publishSql(s.ch, 'after'));
  const want = await rows(`channel = ${lit(s.ch)}`);
  await s.c.waitFor((r) => r.rows().length >= want.length, `${what}: ${want.length} events`, 30_000);
  assertSameEvents(s.c.rows(), want, what);
  assert.ok(!s.c.ended, `${what}: the open stream ended`);
  assert.ok(await timeoutMetric(s.b) > s.timeouts0, `${what}: the timeout metric did not move`);
  assert.match(s.b.log(), /declared dead/, `${what}: no log line about the dead link`);
}

test('stopped backends (SIGSTOP): /healthz 503 within the bound, opens 503 at once, nothing lost after SIGCONT', async (t) => {
  const role = await bridgeRole(t);
  const s = await stallBridge(t, 'sigstop', role);
  const release = await stopBackends(t, s.app, role);
  let detectMs;
  let liveMs;
  let openMs;
  let earlyMs;
  try {
    const t0 = Date.now();
    // sent to a stopped backend: answered when the deadline passes
    const early = assertOpenRefused(s.url, 'SIGSTOP, open on the hung link');
    await poll(async () => (await healthz(s.b.url)) === 503, '/healthz 503 while the backends are stopped',
      { timeoutMs: DETECT_BOUND_MS + 10_000 });
    detectMs = Date.now() - t0;
    // the live link runs no query of its own while idle: only its heartbeat notices
    await poll(async () => {
      const { list } = await metrics(s.b.url);
      const up = findMetric(list, [/db_up/]);
      return up && metricValue(list, up.name) === 0;
    }, 'the idle live link to be declared dead', { timeoutMs: DETECT_BOUND_MS + 10_000 });
    liveMs = Date.now() - t0;
    await sql([1, 2, 3, 4, 5].map((i) => publishSql(s.ch, `during ${i}`)).join('\n'));
    openMs = await assertOpenRefused(s.url, 'SIGSTOP');
    earlyMs = await early;
  } finally {
    await release();
  }
  console.log(`# SIGSTOP: /healthz 503 after ${detectMs} ms, idle live link dead after ${liveMs} ms; `
    + `open refused in ${earlyMs} ms on the hung link, ${openMs} ms after`);
  assert.ok(detectMs <= DETECT_BOUND_MS, `the stall was noticed after ${detectMs} ms (bound ${DETECT_BOUND_MS} ms)`);
  assert.ok(liveMs <= DETECT_BOUND_MS, `the idle link's stall was noticed after ${liveMs} ms (bound ${DETECT_BOUND_MS} ms)`);
  await assertRecovered(t, s, 'SIGSTOP');
});

for (const table of ['meta', 'events']) {
  test(`a lock held on sse_bridge.${table}: /healthz 503 within the bound, opens 503 at once, nothing lost after it ends`, async (t) => {
    const s = await stallBridge(t, `lock_${table}`);
    const locker = appName('locker');
    // Held for at most 40 s; the test ends it sooner by terminating it.
    const held = sql(`SET application_name = ${lit(locker)};
      BEGIN; LOCK TABLE sse_bridge.${table}; SELECT pg_sleep(40); COMMIT;`).catch(() => {});
    const release = async () => {
      await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ${lit(locker)};`);
      await held;
    };
    t.defer(release);
    let detectMs;
    let openMs;
    let earlyMs;
    let during;
    try {
      await poll(async () => Number(await sqlValue(`SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = ${lit(locker)} AND l.relation = 'sse_bridge.${table}'::regclass
            AND l.mode = 'AccessExclusiveLock' AND l.granted`)) === 1, 'the lock to be held', { timeoutMs: 10_000 });
      const t0 = Date.now();
      // waits for the lock: the server cancels it before the deadline
      const early = assertOpenRefused(s.url, `lock on ${table}, open waiting for the lock`);
      await poll(async () => (await healthz(s.b.url)) === 503, `/healthz 503 while sse_bridge.${table} is locked`,
        { timeoutMs: DETECT_BOUND_MS + 10_000 });
      detectMs = Date.now() - t0;
      // Publishing waits for a lock on the events table; these commit
      // during the stall (meta) or as soon as it ends (events).
      during = sql([1, 2, 3, 4, 5].map((i) => publishSql(s.ch, `during ${i}`)).join('\n'));
      openMs = await assertOpenRefused(s.url, `lock on ${table}`);
      earlyMs = await early;
    } finally {
      await release();
    }
    await during;
    console.log(`# lock on sse_bridge.${table}: /healthz 503 after ${detectMs} ms; `
      + `open refused in ${earlyMs} ms while waiting for the lock, ${openMs} ms after`);
    assert.ok(detectMs <= DETECT_BOUND_MS, `the stall was noticed after ${detectMs} ms (bound ${DETECT_BOUND_MS} ms)`);
    await assertRecovered(t, s, `lock on ${table}`);
  });
}

// ------------------------------------------------------------------ retention

// A database of its own (pruning would delete other tests' events) and a
// role for the bridge; both dropped at the end.
async function retentionSetup(t, { grant, maxEvents }) {
  const u = uniq().toLowerCase();
  const db = `sse_e2e_prune_${u}`;
  const role = `sse_e2e_pruner_${u}`;
  t.defer(async () => {
    await sql(`DROP DATABASE IF EXISTS ${db} WITH (FORCE);`, { db: 'postgres' });
    await sql(`DROP ROLE IF EXISTS ${role};`, { db: 'postgres' });
  });
  await sql(`CREATE ROLE ${role} LOGIN; CREATE DATABASE ${db};`, { db: 'postgres' });
  await sql(`CREATE EXTENSION sse_bridge;
    GRANT USAGE ON SCHEMA sse_bridge TO ${role};
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions,
                    sse_bridge.subscription_versions TO ${role};
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO ${role};
    ${grant ? `GRANT EXECUTE ON FUNCTION sse_prune(interval) TO ${role};` : ''}
    ALTER ROLE ${role} IN DATABASE ${db} SET sse_bridge.retention_max_events = ${maxEvents};
    SELECT sse_publish('keep.me', 'e' || i) FROM generate_series(1, 20) i;`, { db });
  const p = process.env;
  return { db, role, conn: `host=${p.PGHOST} port=${p.PGPORT} user=${role} dbname=${db}` };
}

async function logState(db) {
  return JSON.parse(await sql(`SELECT json_build_object('n', (SELECT count(*) FROM sse_bridge.events),
      'min', (SELECT min(id) FROM sse_bridge.events), 'max', (SELECT max(id) FROM sse_bridge.events),
      'pruned', (SELECT pruned_through FROM sse_bridge.meta));`, { db }));
}

test('retention by default: the bridge prunes the log when its role may run sse_prune', async (t) => {
  const r = await retentionSetup(t, { grant: true, maxEvents: 5 });
  const before = await logState(r.db);
  assert.equal(before.n, 20);
  // no --prune-interval: the default applies, and the first call comes soon after connecting
  const b = await withBridge(t, ['--db', r.conn]);
  const after = await poll(async () => {
    const st = await logState(r.db);
    return st.n === 5 ? st : null;
  }, 'the bridge to prune down to 5 events', { timeoutMs: 20_000 });
  assert.equal(after.max, before.max);
  assert.equal(after.min, before.max - 4, 'the newest five are kept');
  assert.equal(after.pruned, before.max - 5, 'the prune mark is right below the first event kept');
  assert.match(b.log(), /pruned 15 events/);
  const { list } = await metrics(b.url);
  const m = findMetric(list, [/prune/, /deleted|pruned/]);
  assert.ok(m, `no prune metric: ${list.map((x) => x.name).join(', ')}`);
  assert.equal(metricValue(list, m.name), 15);
});

test('retention without the grant: one clear warning naming the grant, nothing deleted', async (t) => {
  const r = await retentionSetup(t, { grant: false, maxEvents: 5 });
  const b = await withBridge(t, ['--db', r.conn, '--prune-interval', '1']);
  const warning = new RegExp(`retention is not running.*GRANT EXECUTE ON FUNCTION .*sse_prune\\(interval\\) TO ${r.role}`);
  await poll(async () => warning.test(b.log()), 'the warning about the missing grant', { timeoutMs: 15_000 });
  // the check runs once per connection: force a reconnect, then another
  // connection's worth of ticks, and the warning is still logged once
  await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(r.role)};`, { db: r.db });
  await poll(async () => (await healthz(b.url)) === 200 && /connection failed/.test(b.log()), 'the bridge to reconnect', { timeoutMs: 20_000 });
  const st = await logState(r.db);
  assert.equal(st.n, 20, 'events were deleted without the grant');
  assert.equal(b.log().split('\n').filter((l) => warning.test(l)).length, 1, 'the warning is logged once');
});
