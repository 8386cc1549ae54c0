// deploy/nginx.conf behind real nginx (TLS with a throwaway certificate,
// HTTP/2), with plain EventSource in Chromium: the config alone must keep
// every stream retrying through bridge outages.
import assert from 'node:assert/strict';
import { btest, PAGE_LIB, publisher, snap, startNginx, waitSnap } from '../lib/browser.mjs';
import { freePort, sleep, startBridge } from '../../e2e/lib/bridge.mjs';
import { uniq } from '../../e2e/lib/env.mjs';
import { lit, publish, rows, sql, sqlValue } from '../../e2e/lib/db.mjs';
import { assertSameEvents } from '../../e2e/lib/expect.mjs';

const ARGS = ['--public-channels', 'pub.#', '--retry', '500'];
const STREAMS = 12;

async function setup(t, extra = []) {
  const port = await freePort();
  const ctx = { port, bridges: [] };
  ctx.start = async () => {
    const b = await startBridge([...ARGS, ...extra], { port });
    t.defer(() => b.stop('SIGTERM', { expectZero: false }));
    t.note(`bridge log: ${b.logPath}`);
    ctx.bridge = b;
    return b;
  };
  await ctx.start();
  ctx.nginx = await startNginx(port, { name: `nginx-${uniq()}` });
  t.defer(() => ctx.nginx.stop());
  t.note(`nginx: ${ctx.nginx.dir}`);
  ctx.page = await t.page(`${ctx.nginx.url}/sse-bridge.js`);
  await ctx.page.evaluate(PAGE_LIB);
  return ctx;
}

const all = async (page, pred) => {
  const out = [];
  for (let i = 0; i < STREAMS; i++) out.push(await snap(page, `s${i}`));
  return pred ? out.every(pred) : out;
};

btest('nginx: 12 EventSources over HTTP/2 stay live through bridge outages of 1 s and 10 s; nothing lost, none gives up', async (t) => {
  const ctx = await setup(t);
  const { page } = ctx;
  const proto = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  assert.equal(proto, 'h2', 'the page did not come over HTTP/2');
  const ch = `pub.${uniq()}`;
  for (let i = 0; i < STREAMS; i++) await page.evaluate((n, u) => window.openPlain(n, u), `s${i}`, `/events?channel=${ch}.*`);
  const { poll } = await import('../../e2e/lib/bridge.mjs');
  await poll(() => all(page, (s) => s.ready), `${STREAMS} streams ready`);
  const pub = publisher(`${ch}.x`);
  t.defer(() => pub.stop());
  let outages = 0;
  for (const ms of [1000, 10_000]) {
    const n = (await snap(page, 's0')).events.length;
    await waitSnap(page, 's0', (x) => x.events.length >= n + 30, '30 events before the outage');
    ctx.bridge.proc.kill('SIGKILL');
    await ctx.bridge.exited;
    await sleep(ms); // the outage itself
    await ctx.start();
    const m = (await snap(page, 's0')).events.length;
    await poll(() => all(page, (s) => s.events.length >= m + 30), 'every stream to go on after the outage', { timeoutMs: 30_000 });
    outages++;
  }
  await pub.stop();
  const want = await rows(`channel = ${lit(`${ch}.x`)}`);
  await poll(() => all(page, (s) => s.events.length >= want.length), `all ${want.length} events on every stream`);
  const streams = await all(page);
  streams.forEach((s, i) => {
    assert.equal(s.gaveUp, false, `stream ${i} gave up`);
    assert.notEqual(s.readyState, 2, `stream ${i} is CLOSED`);
    assertSameEvents(s.events, want, `stream ${i}`);
  });
  const retries = ctx.nginx.accessLog().split('\n').filter((l) => /" 200 1[0-9] "/.test(l) && l.includes('/events?')).length;
  assert.ok(retries >= STREAMS, `nginx answered only ${retries} retry streams during the outages`);
  console.log(`    nginx: ${STREAMS} streams x ${want.length} events compared, ${outages} outages (1 s, 10 s) survived, ` +
    `${retries} retry answers from nginx, ${streams.reduce((a, s) => a + s.errors.length, 0)} reconnects`);
});

btest('nginx: sse_close -> 204 through nginx -> EventSource stops; Last-Event-ID reaches the bridge', async (t) => {
  const ctx = await setup(t);
  const { page } = ctx;
  const ch = `pub.${uniq()}`;
  const sub = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(`${ch}.job`)}])`);
  await page.evaluate((u) => window.openPlain('c', u, ['message', 'close']), `/events/${sub}`);
  await waitSnap(page, 'c', (x) => x.ready, 'ready');
  await publish([{ channel: `${ch}.job`, data: 'a' }, { channel: `${ch}.job`, data: 'b' }, { channel: `${ch}.job`, data: 'c' }]);
  await sql(`SELECT sse_close(${lit(`${ch}.job`)});`);
  const want = await rows(`channel = ${lit(`${ch}.job`)}`);
  const s = await waitSnap(page, 'c', (x) => x.readyState === 2, 'EventSource CLOSED after 204');
  assertSameEvents(s.events, want, 'up to close');
  const log = ctx.nginx.accessLog().split('\n').filter((l) => l.includes(`/events/${sub}`));
  assert.match(log[log.length - 1], /" 204 /, `last request: ${log[log.length - 1]}`);
  // the header is forwarded: a bad one is refused by the bridge, a good one is the resume point
  const bad = await page.evaluate((u) => fetch(u, { headers: { 'Last-Event-ID': 'abc' } }).then((r) => r.status),
    `/events?channel=${ch}.*`);
  assert.equal(bad, 400, 'a bad Last-Event-ID did not reach the bridge');
  const ids = await page.evaluate(async (u, from) => {
    const ctl = new AbortController();
    const res = await fetch(u, { headers: { 'Last-Event-ID': from }, signal: ctl.signal });
    const reader = res.body.getReader();
    let text = '';
    while (!text.includes('event: ready')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ctl.abort();
    return [...text.matchAll(/^id: (\d+)\n(?!event: ready)/gm)].map((m) => m[1]);
  }, `/events?channel=${ch}.*`, want[0].id);
  assert.deepEqual(ids, want.slice(1).map((r) => r.id), 'replay after the forwarded Last-Event-ID');
});

btest('nginx: the bridge\'s own 503 (over --max-clients) reaches EventSource as a retry after Retry-After', async (t) => {
  const ctx = await setup(t, ['--max-clients', '2']);
  const { page } = ctx;
  const ch = `pub.${uniq()}`;
  for (const n of ['a', 'b']) {
    await page.evaluate((x, u) => window.openPlain(x, u), n, `/events?channel=${ch}`);
    await waitSnap(page, n, (x) => x.ready, `stream ${n} ready`);
  }
  await page.evaluate((u) => window.openPlain('c', u), `/events?channel=${ch}&third=1`);
  const c = await waitSnap(page, 'c', (x) => x.errors.length >= 1, 'the third stream to be turned away');
  assert.notEqual(c.readyState, 2, 'the third stream gave up');
  const third = ctx.nginx.accessLog().split('\n').filter((l) => l.includes('third=1'));
  assert.match(third[0], /" 200 1[0-9] "/, `nginx answered: ${third[0]}`);
  await page.evaluate(() => window.T.a.es.close());
  const s = await waitSnap(page, 'c', (x) => x.ready, 'the third stream to connect once there is room', 30_000);
  const waited = s.readyAt - s.errorTimes[0];
  assert.ok(waited >= 5000, `reconnected ${waited} ms after a 503 with Retry-After: 5`);
  assert.equal(s.gaveUp, false);
  await publish([{ channel: ch, data: 'after the wait' }]);
  await waitSnap(page, 'c', (x) => x.events.some((e) => e.data === 'after the wait'), 'an event on the third stream');
});
