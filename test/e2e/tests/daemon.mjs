// The daemon around the streams: command line and environment, the
// subscription housekeeping timer, and replays that must not hold up live
// delivery to everyone else.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from '../lib/harness.mjs';
import { conninfo, ENV, recordPid, uniq } from '../lib/env.mjs';
import { lit, publish, rows, sql, sqlValue } from '../lib/db.mjs';
import { cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents } from '../lib/expect.mjs';
import { freePort, healthz, poll, withBridge } from '../lib/bridge.mjs';

function runBridge(args, env = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(ENV.bridgeBin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => { out += b; });
    p.stderr.on('data', (b) => { out += b; });
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, out }));
  });
}

const FLAGS = ['db', 'listen', 'public-channels', 'keepalive', 'retry', 'max-clients', 'client-queue', 'cors-origin', 'log-level'];

test('--help lists every flag with its SSE_BRIDGE_ variable; --version prints the version', async () => {
  const help = await runBridge(['--help']);
  assert.equal(help.code, 0, help.out);
  for (const f of FLAGS) {
    assert.match(help.out, new RegExp(`--${f}\\b`), `--help lacks --${f}`);
    assert.match(help.out, new RegExp(`SSE_BRIDGE_${f.toUpperCase().replace(/-/g, '_')}\\b`), `--help lacks SSE_BRIDGE_ for ${f}`);
  }
  const v = await runBridge(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.out, /\d+\.\d+/);
  const bad = await runBridge(['--no-such-flag']);
  assert.notEqual(bad.code, 0, 'an unknown flag was accepted');
});

test('settings from SSE_BRIDGE_* environment variables', async (t) => {
  const port = await freePort();
  const env = {
    SSE_BRIDGE_DB: conninfo(),
    SSE_BRIDGE_LISTEN: `127.0.0.1:${port}`,
    SSE_BRIDGE_PUBLIC_CHANNELS: 'envpub.#',
    SSE_BRIDGE_RETRY: '4321',
  };
  const p = spawn(ENV.bridgeBin, [], { env: { ...process.env, ...env }, stdio: 'ignore' });
  recordPid(p.pid);
  const exited = new Promise((r) => p.once('exit', r));
  t.defer(async () => {
    p.kill('SIGTERM');
    await exited;
  });
  await poll(async () => (await healthz(`http://127.0.0.1:${port}`)) === 200, 'bridge configured by environment');
  const c = cStream(`http://127.0.0.1:${port}/events?channel=envpub.${uniq()}`);
  t.defer(c.close);
  await c.waitReady();
  assert.deepEqual(c.retries, [4321]);
});

test('the bridge touches connected subscriptions and expires abandoned ones', async (t) => {
  const b = await withBridge(t, ['--touch-interval', '1']);
  const kept = await sqlValue(`sse_subscribe_filter(ARRAY['job.${uniq()}'], '{}', '3 seconds')`);
  const left = await sqlValue(`sse_subscribe_filter(ARRAY['job.${uniq()}'], '{}', '3 seconds')`);
  const c = cStream(`${b.url}/events/${kept}`);
  t.defer(c.close);
  await c.waitReady();
  // the abandoned one disappears through the bridge's own sse_expire calls
  await poll(async () => (await sqlValue(`(SELECT count(*) FROM sse_bridge.subscriptions WHERE id = ${lit(left)})`)) === '0',
    'the abandoned subscription to expire', { timeoutMs: 15_000, everyMs: 250 });
  assert.equal(await sqlValue(`(SELECT count(*) FROM sse_bridge.subscriptions WHERE id = ${lit(kept)})`), '1',
    'the connected subscription expired');
  assert.ok(!c.ended, 'the stream of the connected subscription ended');
});

test('a replay stuck behind a client that stops reading does not hold up live delivery', async (t) => {
  const b = await withBridge(t, ['--public-channels', 'pub.#']);
  const old = `pub.${uniq()}.history`;
  await sql(`SELECT sse_publish(${lit(old)}, repeat('h', 2000) || i::text) FROM generate_series(1, 5000) i;`);
  // stops reading after its first replayed event, with a small receive buffer
  const stuck = cStream(`${b.url}/events?channel=${old}&lastEventId=0`,
    { pauseAfter: 1, rcvbuf: 4096, reconnect: 5, maxDelayMs: 100 });
  t.defer(stuck.close);
  await stuck.waitFor((r) => r.paused, 'the replaying client to stop reading');
  const live = `pub.${uniq()}.live`;
  const es = esStream(`${b.url}/events?channel=${live}`);
  t.defer(es.close);
  await es.waitReady(10_000);
  for (let i = 0; i < 5; i++) {
    const t0 = Date.now();
    await publish([{ channel: live, data: `tick ${i}` }]);
    await es.waitFor((r) => r.rows().length >= i + 1, `live event ${i}`, 5000);
    t.note(`live event ${i} after ${Date.now() - t0} ms`);
  }
  assertSameEvents(es.rows(), await rows(`channel = ${lit(live)}`), 'live client');
  // and the replay completes once the client reads again (across a drop
  // for a full queue, if there was one): the whole history, once
  stuck.signal('SIGUSR1');
  const history = await rows(`channel = ${lit(old)}`);
  await stuck.waitFor((r) => r.rows().length >= history.length, `${history.length} replayed events`, 60_000);
  assertSameEvents(stuck.rows(), history, 'replay after the pause');
});
