// Losing the database: streams stay open, the bridge reconnects and
// catches up, nothing is lost or duplicated.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, publish, restartServer, rows, serverRunning, sql, sqlValue, startServer, stopServer } from '../lib/db.mjs';
import { curlStream, cStream, esStream, request } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { findMetric, healthz, metrics, metricValue, poll, startBridge, withBridge } from '../lib/bridge.mjs';

const M = () => ENV.mainUrl;

test('pg_ctl restart during a stream: every later event delivered, none duplicated, clients stay connected', async (t) => {
  const ch = `pub.${uniq()}.restart`;
  const url = `${M()}/events?channel=${ch}`;
  const clients = [curlStream(url), esStream(url), cStream(url)];
  for (const c of clients) t.defer(c.close);
  for (const c of clients) await c.waitReady();
  const { list: m0 } = await metrics(M());
  const rc = findMetric(m0, [/reconnect/]);
  assert.ok(rc, `no database reconnect metric: ${m0.map((m) => m.name).join(', ')}`);
  await publish([1, 2, 3].map((i) => ({ channel: ch, data: `before ${i}` })));
  for (const c of clients) await c.waitFor((r) => r.rows().length >= 3, '3 events before the restart');
  await restartServer();
  await publish([1, 2, 3, 4, 5].map((i) => ({ channel: ch, data: `after ${i}`, event: 'after' })));
  const want = await rows(`channel = ${lit(ch)}`);
  for (const c of clients) {
    await c.waitFor((r) => r.rows().length >= want.length, `${want.length} events`, 40_000);
    assertSameEvents(c.rows(), want, c.kind);
  }
  assert.ok(!clients[0].ended, 'curl stream ended during the restart');
  assert.ok(!clients[2].ended, 'C client stream ended during the restart');
  assert.equal(clients[1].connects, 1, 'EventSource had to reconnect');
  await poll(async () => metricValue((await metrics(M())).list, rc.name) > metricValue(m0, rc.name),
    'the reconnect counter to move', { timeoutMs: 5000 });
  // /healthz needs both links; the work link may still be in its backoff
  await poll(async () => (await healthz(M())) === 200, '/healthz 200 after the restart', { timeoutMs: 15_000 });
});

test('database down: /healthz 503, streams stay open with keepalives, catch up after start', async (t) => {
  const b = await withBridge(t, ['--public-channels', 'pub.#', '--keepalive', '1']);
  const ch = `pub.${uniq()}.down`;
  const url = `${b.url}/events?channel=${ch}`;
  const c = cStream(url);
  const es = esStream(url);
  t.defer(c.close);
  t.defer(es.close);
  await c.waitReady();
  await es.waitReady();
  await publish([{ channel: ch, data: 'before' }]);
  await c.waitFor((r) => r.rows().length >= 1, 'first event');
  t.defer(async () => {
    if (!(await serverRunning())) await startServer();
  });
  await stopServer();
  try {
    await poll(async () => (await healthz(b.url)) === 503, '/healthz 503 while the database is down', { timeoutMs: 15_000 });
    const n = c.comments.length;
    await c.waitFor((r) => r.comments.length >= n + 2, 'keepalives while the database is down', 10_000);
    assert.ok(!c.ended, 'stream ended while the database was down');
  } finally {
    await startServer();
  }
  await poll(async () => (await healthz(b.url)) === 200, '/healthz 200 after the database is back', { timeoutMs: 40_000 });
  await publish([{ channel: ch, data: 'after 1' }, { channel: ch, data: 'after 2' }]);
  const want = await rows(`channel = ${lit(ch)}`);
  for (const x of [c, es]) {
    await x.waitFor((r) => r.rows().length >= want.length, `${want.length} events`, 30_000);
    assertSameEvents(x.rows(), want, x.kind);
  }
  assert.ok(!c.ended);
  assert.equal(es.connects, 1, 'EventSource had to reconnect');
});

test('a subscription changed while the bridge was cut off from the database applies once it is back', async (t) => {
  // The bridge runs as its own role so that it can be kept from logging in
  // again: the change below commits (and NOTIFYs) while nothing listens.
  const role = `sse_e2e_${uniq().replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`;
  await sql(`CREATE ROLE ${role} LOGIN;
    GRANT USAGE ON SCHEMA sse_bridge TO ${role};
    GRANT SELECT ON sse_bridge.events, sse_bridge.meta, sse_bridge.subscriptions,
      sse_bridge.subscription_versions TO ${role};
    GRANT EXECUTE ON FUNCTION sse_touch(uuid), sse_expire() TO ${role};`);
  t.defer(() => sql(`ALTER ROLE ${role} LOGIN;
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(role)};
    DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role};`).catch(() => {}));
  const p = process.env;
  const db = `host=${p.PGHOST} port=${p.PGPORT} user=${role} dbname=${ENV.db}`;
  const b = await withBridge(t, ['--db', db]);

  const u = uniq();
  const id = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(`cut.${u}.a`)}])`);
  const c = cStream(`${b.url}/events/${id}`);
  t.defer(c.close);
  await c.waitReady();

  await sql(`ALTER ROLE ${role} NOLOGIN;
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = ${lit(role)};`);
  await poll(async () => (await healthz(b.url)) === 503, '/healthz 503 while the bridge cannot log in', { timeoutMs: 15_000 });
  await sql(`SELECT sse_subscription_add(${lit(id)}, ARRAY[${lit(`cut.${u}.b`)}]);`);
  await sql(`ALTER ROLE ${role} LOGIN;`);
  await poll(async () => (await healthz(b.url)) === 200, '/healthz 200 once the bridge is back', { timeoutMs: 60_000 });

  // The change took its position in the log while nothing listened: the
  // bridge applies it when its reading passes that position, so every event
  // on the added pattern after the change arrives, the first one included.
  await publish([{ channel: `cut.${u}.b`, data: 'added 1' }, { channel: `cut.${u}.a`, data: 'a 1' },
    { channel: `cut.${u}.b`, data: 'added 2' }, { channel: `cut.${u}.a`, data: 'last' }]);
  await c.waitEvent((e) => e.data === 'last', 'last event', 30_000);
  const want = await rows(`channel LIKE ${lit(`cut.${u}.%`)}`);
  assertSameEvents(c.rows(), want, 'stream after the subscription changed while cut off');
  assert.ok(!c.ended, 'stream ended while the bridge was cut off');
});

test('JIT is off in the bridge\'s sessions: an open does not wait for compilation even when every plan would be compiled', async (t) => {
  const gucs = ['jit_above_cost', 'jit_inline_above_cost', 'jit_optimize_above_cost'];
  if ((await sqlValue('pg_jit_available()')) !== 'true') {
    console.log('    JIT is not available in this server: nothing to compile, the check cannot run');
    return;
  }
  await sql(gucs.map((g) => `ALTER DATABASE ${ENV.db} SET ${g} = 0;`).join('\n'));
  t.defer(() => sql(gucs.map((g) => `ALTER DATABASE ${ENV.db} RESET ${g};`).join('\n')));
  const b = await startBridge([]);	// its sessions start with the settings above
  t.defer(() => b.stop());
  const id = await sqlValue(`sse_subscribe_filter(ARRAY['jit.${uniq()}'])`);
  const ms = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    const res = await request(`${b.url}/events/${id}`);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    assert.equal(res.status, 200);
  }
  ms.sort((x, y) => x - y);
  console.log(`    subscription opens with jit_above_cost = 0: ${ms.map((x) => x.toFixed(1)).join(', ')} ms`);
  // a compiled open statement takes hundreds of milliseconds here
  assert.ok(ms[2] < 100, `median open ${ms[2].toFixed(1)} ms`);
});
