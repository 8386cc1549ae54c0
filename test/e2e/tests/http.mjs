// CORS with --cors-origin, and /metrics.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { publish } from '../lib/db.mjs';
import { curlStream, cStream, request } from '../lib/clients.mjs';
import { findMetric, metrics, metricValue, poll, withBridge } from '../lib/bridge.mjs';

test('CORS preflight and cross-origin streams with --cors-origin', async (t) => {
  const origin = 'http://app.example:3000';
  const b = await withBridge(t, ['--public-channels', 'pub.#', '--cors-origin', origin]);
  const url = `${b.url}/events?channel=pub.${uniq()}`;
  const pre = await request(url, {
    method: 'OPTIONS',
    headers: { Origin: origin, 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'last-event-id, cache-control' },
  });
  assert.ok([200, 204].includes(pre.status), `preflight status ${pre.status} ${pre.body}`);
  assert.equal(pre.headers['access-control-allow-origin'], origin);
  assert.match(pre.headers['access-control-allow-methods'] || '', /\bGET\b/);
  assert.match(pre.headers['access-control-allow-headers'] || '', /last-event-id/i);
  const s = curlStream(url, { headers: { Origin: origin } });
  t.defer(s.close);
  await s.waitReady();
  assert.equal(s.headers['access-control-allow-origin'], origin, 'stream without Access-Control-Allow-Origin');
  const evil = 'http://evil.example';
  const pre2 = await request(url, { method: 'OPTIONS', headers: { Origin: evil, 'Access-Control-Request-Method': 'GET' } });
  assert.ok(![evil, '*'].includes(pre2.headers['access-control-allow-origin']), 'preflight allowed another origin');
  const s2 = await request(url, { headers: { Origin: evil } });
  assert.ok(![evil, '*'].includes(s2.headers['access-control-allow-origin']), 'stream allowed another origin');
  const plain = await request(`${ENV.mainUrl}/events?channel=pub.${uniq()}`, { headers: { Origin: origin } });
  assert.equal(plain.headers['access-control-allow-origin'], undefined, 'CORS header without --cors-origin');
});

const SERIES = {
  clients: [[/client|stream/], [/slow|drop|disconnect|total|reject/]],
  'events sent': [[/event/, /sent|send|deliver/], [/replay|byte/]],
  'bytes sent': [[/byte/], []],
  replayed: [[/replay/], [/byte/]],
  'slow-client drops': [[/slow|drop/], []],
  'database reconnects': [[/reconnect/], []],
  'commit-to-send lag': [[/lag|latency/], []],
};

test('/metrics: Prometheus text with every documented series, and the counters move', async (t) => {
  const b = await withBridge(t, ['--public-channels', 'pub.#']);
  const { res, list: m0 } = await metrics(b.url);
  assert.match(res.headers['content-type'] || '', /^text\/plain/);
  assert.match(res.body, /^# (HELP|TYPE) /m, 'no HELP/TYPE lines');
  const found = {};
  const missing = [];
  for (const [what, [must, mustNot]] of Object.entries(SERIES)) {
    const m = findMetric(m0, must, mustNot);
    if (m) found[what] = m.name;
    else missing.push(what);
  }
  assert.deepEqual(missing, [], `series missing from /metrics (have: ${[...new Set(m0.map((m) => m.name))].join(', ')})`);
  t.note(`series: ${JSON.stringify(found)}`);
  const ch = `pub.${uniq()}.m`;
  const url = `${b.url}/events?channel=${ch}`;
  // the gauge may count the /metrics connection itself: compare with a baseline
  const c0 = metricValue(m0, found.clients);
  const s1 = cStream(url);
  const s2 = curlStream(url);
  t.defer(s1.close);
  t.defer(s2.close);
  await s1.waitReady();
  await s2.waitReady();
  await poll(async () => metricValue((await metrics(b.url)).list, found.clients) === c0 + 2, `${found.clients} = ${c0} + 2`, { timeoutMs: 5000 });
  await publish([1, 2, 3].map((i) => ({ channel: ch, data: `m${i}` })));
  await s1.waitFor((r) => r.rows().length >= 3, '3 events');
  await s2.waitFor((r) => r.rows().length >= 3, '3 events');
  const m1 = (await metrics(b.url)).list;
  assert.ok(metricValue(m1, found['events sent']) - metricValue(m0, found['events sent']) >= 6, 'events sent did not count 2 x 3');
  assert.ok(metricValue(m1, found['bytes sent']) - metricValue(m0, found['bytes sent']) >= 6 * 'data: m1\n'.length, 'bytes sent did not move');
  const r = cStream(`${url}&lastEventId=0`);
  t.defer(r.close);
  await r.waitReady();
  const m2 = (await metrics(b.url)).list;
  assert.ok(metricValue(m2, found.replayed) - metricValue(m1, found.replayed) >= 3, 'replayed events did not count the replay');
  await s2.close();
  await r.close();
  await poll(async () => metricValue((await metrics(b.url)).list, found.clients) === c0 + 1, `${found.clients} back to ${c0} + 1`, { timeoutMs: 5000 });
});
