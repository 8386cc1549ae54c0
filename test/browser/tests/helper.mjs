// The browser helper (client/sse-bridge.js, served at /sse-bridge.js) in
// Chromium, against real bridges: states, ready, order, a kill -9 of the
// bridge, statuses that make EventSource give up, close, reset after a
// prune, multi-line payloads, withCredentials, and a token cookie renewed
// by the refresh hook when it expires.
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { btest, helperPage, publisher, snap, waitSnap } from '../lib/browser.mjs';
import { freePort, sleep, startBridge } from '../../e2e/lib/bridge.mjs';
import { ENV, tmpPath, uniq } from '../../e2e/lib/env.mjs';
import { head, lit, prunedThrough, publish, rows, sql, sqlValue } from '../../e2e/lib/db.mjs';
import { assertSameEvents } from '../../e2e/lib/expect.mjs';

const ROOT = join(ENV.here, '..', '..');
const RETRY_MS = 300;
const ARGS = ['--public-channels', 'pub.#', '--retry', String(RETRY_MS)];

// A bridge stopped when the test ends (whatever its exit status: some are
// killed on purpose).
async function bridge(t, extra = [], opts = {}) {
  const b = await startBridge([...ARGS, ...extra], opts);
  t.defer(() => b.stop('SIGTERM', { expectZero: false }));
  t.note(`bridge log: ${b.logPath}`);
  return b;
}

const stateNames = (s) => s.states.map((x) => x.st);

btest('the bridge serves /sse-bridge.js and /sse-bridge.d.ts byte for byte; / only with --demo on', async (t) => {
  const b = await bridge(t);
  for (const [path, file, type] of [['/sse-bridge.js', 'client/sse-bridge.js', /^text\/javascript/],
    ['/sse-bridge.d.ts', 'client/sse-bridge.d.ts', /typescript/]]) {
    const res = await fetch(`${b.url}${path}?v=1`);
    assert.equal(res.status, 200, path);
    assert.match(res.headers.get('content-type'), type, path);
    assert.equal(await res.text(), readFileSync(join(ROOT, file), 'utf8'), `${path} differs from ${file}`);
  }
  assert.equal((await fetch(`${b.url}/`)).status, 404, '/ without --demo');
  const d = await bridge(t, ['--demo', 'on']);
  const res = await fetch(`${d.url}/?job=x`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/html/);
  assert.equal(await res.text(), readFileSync(join(ROOT, 'client/demo.html'), 'utf8'));
});

btest('helper: connecting, then live at ready; ready resolves with the head; events in log order', async (t) => {
  const b = await bridge(t);
  const ch = `pub.${uniq()}`;
  await publish([{ channel: `${ch}.a`, data: 'before the stream' }]);
  const h0 = await head();
  const page = await helperPage(t, b.url);
  const first = await page.evaluate((u) => window.openHelper('h', u, {}, ['message', 'update']), `/events?channel=${ch}.*`);
  assert.equal(first, 'connecting');
  const s = await waitSnap(page, 'h', (x) => x.ready, 'ready');
  assert.deepEqual(stateNames(s), ['live']);
  assert.equal(s.ready.head, h0, 'ready head');
  assert.equal(s.state, 'live');
  await publish([1, 2, 3, 4, 5, 6].map((i) => ({ channel: `${ch}.${i % 2 ? 'a' : 'b'}`, data: { i }, asJson: true,
    event: i % 3 ? null : 'update' })));
  const want = await rows(`channel LIKE ${lit(`${ch}.%`)} AND id > ${h0}`);
  const got = await waitSnap(page, 'h', (x) => x.events.length >= want.length, `${want.length} events`);
  assertSameEvents(got.events, want, 'helper');
  assert.equal(got.stats.failures, 0);
  assert.equal(got.stats.duplicates, 0);
});

btest('helper: kill -9 of the bridge mid-stream -> exactly the committed events, in order, once', async (t) => {
  const port = await freePort();
  let b = await bridge(t, [], { port });
  const ch = `pub.${uniq()}`;
  const page = await helperPage(t, b.url);
  await page.evaluate((u) => window.openHelper('h', u), `/events?channel=${ch}.*`);
  await waitSnap(page, 'h', (x) => x.ready, 'ready');
  const pub = publisher(`${ch}.x`);
  t.defer(() => pub.stop());
  await waitSnap(page, 'h', (x) => x.events.length >= 100, '100 events before the kill');
  b.proc.kill('SIGKILL');
  await b.exited;
  await sleep(1000); // the outage itself
  b = await bridge(t, [], { port });
  const n = (await snap(page, 'h')).events.length;
  await waitSnap(page, 'h', (x) => x.events.length >= n + 100 && x.state === 'live', '100 events after the restart');
  await pub.stop();
  const want = await rows(`channel = ${lit(`${ch}.x`)}`);
  const s = await waitSnap(page, 'h', (x) => x.events.length >= want.length, `all ${want.length} events`);
  assertSameEvents(s.events, want, 'helper across kill -9');
  const names = stateNames(s);
  assert.ok(names.includes('reconnecting'), `states: ${names}`);
  assert.equal(names[names.length - 1], 'live');
  assert.ok(s.stats.totalFailures >= 1);
  console.log(`    kill -9: ${want.length} events compared, ${s.stats.totalFailures} failures, ${s.stats.reopens} reopens`);
});

// A stand-in for a proxy in trouble on the bridge's port: 503 with
// Retry-After, then a stream that repeats an old id.
function fakeUpstream(port, plan) {
  const log = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const entry = { t: Date.now(), plain: u.searchParams.has('plain'), lastEventId: u.searchParams.get('lastEventId'),
      header: req.headers['last-event-id'] ?? null, phase: plan.phase };
    log.push(entry);
    if (plan.phase === 'html') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<p>not a stream</p>');
    } else if (entry.plain || plan.phase === 'busy') {
      res.writeHead(503, { 'Retry-After': '2', 'Content-Type': 'application/json' });
      res.end('{"error":"unavailable"}\n');
    } else {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.end(`retry: ${RETRY_MS}\n\nid: ${plan.dupId}\ndata: ${plan.dupData}\n\n` +
        `id: ${plan.last}\nevent: ready\ndata: {"head":${plan.last}}\n\n`);
    }
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return {
    log,
    listen: () => new Promise((r) => server.listen(port, '127.0.0.1', r)),
    close: () => new Promise((r) => {
      server.close(r);
      for (const s of sockets) s.destroy();
    }),
  };
}

btest('helper: after EventSource gives up (503 + Retry-After) it reopens with lastEventId after Retry-After, drops a repeated id, loses nothing; plain EventSource stays closed', async (t) => {
  const port = await freePort();
  let b = await bridge(t, [], { port });
  const ch = `pub.${uniq()}`;
  const url = `/events?channel=${ch}.*`;
  const page = await helperPage(t, b.url);
  await page.evaluate((u) => window.openHelper('h', u), url);
  await page.evaluate((u) => window.openPlain('p', u), `${url}&plain=1`);
  await waitSnap(page, 'h', (x) => x.ready, 'helper ready');
  await waitSnap(page, 'p', (x) => x.ready, 'plain ready');
  await publish([1, 2, 3, 4, 5].map((i) => ({ channel: `${ch}.x`, data: `before ${i}` })));
  const before = await rows(`channel = ${lit(`${ch}.x`)}`);
  await waitSnap(page, 'h', (x) => x.events.length === 5, '5 events (helper)');
  await waitSnap(page, 'p', (x) => x.events.length === 5, '5 events (plain)');
  const last = before[4].id;
  const plan = { phase: 'busy', last, dupId: before[2].id, dupData: 'a repeated id' };
  const fake = fakeUpstream(port, plan);
  await b.stop('SIGTERM', { expectZero: false });
  await fake.listen();
  t.defer(() => fake.close());
  await publish([{ channel: `${ch}.x`, data: 'during the outage' }]);
  const helperReqs = () => fake.log.filter((r) => !r.plain);
  await waitSnap(page, 'p', (x) => x.gaveUp, 'plain EventSource to give up on 503', 20_000);
  // the reconnect (503: EventSource gives up), the probe (503, Retry-After: 2), the reopen
  const { poll } = await import('../../e2e/lib/bridge.mjs');
  await poll(() => helperReqs().length >= 3, '3 helper requests to the 503 server', { timeoutMs: 20_000 });
  const r = helperReqs();
  assert.ok(r[2].t - r[1].t >= 1900, `reopen ${r[2].t - r[1].t} ms after a 503 with Retry-After: 2`);
  for (const x of r) {
    const held = (v) => v != null && v.replace(/-(?:0|[0-9a-f]{8})$/, '') === last;
    assert.ok(held(x.lastEventId) || held(x.header),
      `request without the last id ${last}: ${JSON.stringify(x)}`);
  }
  plan.phase = 'dup';
  // the stand-in's stream ends at once, so the helper goes live and reconnects in turn
  await waitSnap(page, 'h', (x) => x.states.some((st) => st.st === 'live' && st.stats.duplicates >= 1),
    'the repeated id to be dropped', 20_000);
  await fake.close();
  b = await bridge(t, [], { port });
  await publish([{ channel: `${ch}.x`, data: 'after the outage' }]);
  const want = await rows(`channel = ${lit(`${ch}.x`)}`);
  const s = await waitSnap(page, 'h', (x) => x.events.length >= want.length, 'every event');
  assertSameEvents(s.events, want, 'helper');
  assert.ok(s.stats.reopens >= 1, 'no reopen counted');
  const p = await snap(page, 'p');
  assert.equal(p.readyState, 2, 'plain EventSource did not give up: the test proves nothing');
  assert.equal(p.events.length, 5);
});

btest('helper: a 200 that EventSource refuses (text/html) -> backoff, not a request loop', async (t) => {
  const port = await freePort();
  const b = await bridge(t, [], { port });
  const page = await helperPage(t, b.url);
  await b.stop('SIGTERM', { expectZero: false });
  const fake = fakeUpstream(port, { phase: 'html' });
  await fake.listen();
  t.defer(() => fake.close());
  await page.evaluate((u) => window.openHelper('h', u), `/events?channel=pub.${uniq()}`);
  await sleep(5000); // a window to count requests in
  const n = fake.log.length;
  const s = await snap(page, 'h');
  assert.ok(n >= 2 && n <= 30, `${n} requests in 5 s`);
  assert.equal(s.state, 'reconnecting');
  assert.equal(s.events.length, 0);
  await page.evaluate(() => window.T.h.s.close());
});

btest('helper: sse_close -> close event, 204, state closed, no further requests; a wildcard stream stays live', async (t) => {
  const b = await bridge(t);
  const ch = `pub.${uniq()}`;
  const sub = await sqlValue(`sse_subscribe_filter(ARRAY[${lit(`${ch}.job`)}])`);
  const page = await helperPage(t, b.url);
  let requests = 0;
  page.on('request', (r) => {
    if (r.url().includes(sub)) requests++;
  });
  await page.evaluate((u) => window.openHelper('one', u, {}, ['message', 'close']), `/events/${sub}`);
  await page.evaluate((u) => window.openHelper('all', u, {}, ['message', 'close']), `/events?channel=${ch}.*`);
  await waitSnap(page, 'one', (x) => x.ready, 'subscription ready');
  await waitSnap(page, 'all', (x) => x.ready, 'wildcard ready');
  await publish([{ channel: `${ch}.job`, data: 'step' }]);
  await sql(`SELECT sse_close(${lit(`${ch}.job`)});`);
  const want = await rows(`channel = ${lit(`${ch}.job`)}`);
  const s = await waitSnap(page, 'one', (x) => x.state === 'closed', 'state closed', 20_000);
  assert.deepEqual(s.closes, [{ status: 204, retryAfter: 0 }]);
  assertSameEvents(s.events, want, 'subscription up to close');
  assert.equal(s.events[s.events.length - 1].event, 'close');
  assert.equal(s.stats.duplicates, 0, 'an event was seen twice');
  const n = requests;
  // absence of reconnects: watch for several retry intervals
  await sleep(RETRY_MS * 5 + 1000);
  assert.equal(requests, n, 'requests after the stream was closed');
  assert.equal((await snap(page, 'one')).state, 'closed');
  await publish([{ channel: `${ch}.other`, data: 'still here' }]);
  const w = await waitSnap(page, 'all', (x) => x.events.some((e) => e.data === 'still here'), 'the wildcard stream to go on');
  assert.equal(w.state, 'live');
  assert.deepEqual(stateNames(w), ['live']);
});

btest('helper: reset after a prune while the bridge was down -> onReset with the lost ids, then the retained rows', async (t) => {
  const port = await freePort();
  let b = await bridge(t, [], { port });
  const ch = `pub.${uniq()}`;
  const page = await helperPage(t, b.url);
  await page.evaluate((u) => window.openHelper('h', u), `/events?channel=${ch}.*`);
  await waitSnap(page, 'h', (x) => x.ready, 'ready');
  await publish([{ channel: `${ch}.x`, data: 'seen 1' }, { channel: `${ch}.x`, data: 'seen 2' }]);
  const seen = await rows(`channel = ${lit(`${ch}.x`)}`);
  await waitSnap(page, 'h', (x) => x.events.length === 2, 'the first 2 events');
  await b.stop('SIGTERM', { expectZero: false });
  await publish([1, 2, 3].map((i) => ({ channel: `${ch}.x`, data: `lost ${i}` })));
  await sql("SELECT sse_prune('0 seconds');");
  const pruned = await prunedThrough();
  await publish([{ channel: `${ch}.x`, data: 'kept 1' }, { channel: `${ch}.x`, data: 'kept 2' }]);
  const kept = await rows(`channel = ${lit(`${ch}.x`)}`);
  b = await bridge(t, [], { port });
  const s = await waitSnap(page, 'h', (x) => x.resets.length >= 1 && x.events.length >= 4 && x.state === 'live',
    'reset and the kept rows', 30_000);
  assert.equal(s.resets.length, 1);
  assert.equal(s.resets[0].lost_from, Number(seen[1].id) + 1);
  assert.equal(s.resets[0].lost_through, pruned);
  assertSameEvents(s.events, [...seen, ...kept], 'seen, then the kept rows');
});

btest('multi-line payloads in Chromium: LF kept, CR and CRLF arrive as LF', async (t) => {
  const b = await bridge(t);
  const ch = `pub.${uniq()}`;
  const page = await helperPage(t, b.url);
  await page.evaluate((u) => window.openHelper('h', u), `/events?channel=${ch}`);
  await waitSnap(page, 'h', (x) => x.ready, 'ready');
  const payloads = ['one\ntwo', 'crlf\r\nline', 'cr\rline', '\nleading', 'trailing\n', 'a\n\n\nb', 'mixed\r\n\r\rx\n',
    'ünïcødé ✓\n€', 'data: not a field\nid: 7\nevent: x', ' leading space', '{"json":"a\\nb"}'];
  await publish(payloads.map((data) => ({ channel: ch, data })));
  const want = await rows(`channel = ${lit(ch)}`);
  assert.deepEqual(want.map((r) => r.data), payloads, 'the log keeps the payloads exactly');
  const s = await waitSnap(page, 'h', (x) => x.events.length >= payloads.length, 'every payload');
  assert.deepEqual(s.events.map((e) => e.data), payloads.map((p) => p.replace(/\r\n|\r/g, '\n')));
  assert.ok(s.events.every((e) => !e.data.includes('\r')), 'a CR reached the page');
  assertSameEvents(s.events, want, 'multi-line');
});

btest('helper: withCredentials is passed to EventSource (credentialed CORS needs the exact origin)', async (t) => {
  const a = await bridge(t);
  const exact = await bridge(t, ['--cors-origin', a.url]);
  const star = await bridge(t, ['--cors-origin', '*']);
  const ch = `pub.${uniq()}`;
  const page = await helperPage(t, a.url);
  // localhost vs 127.0.0.1: another origin
  const other = (x) => `http://localhost:${x.port}/events?channel=${ch}`;
  await page.evaluate((u) => window.openHelper('exact', u, { withCredentials: true }), other(exact));
  await page.evaluate((u) => window.openHelper('star', u, { withCredentials: false }), other(star));
  await page.evaluate((u) => window.openHelper('starCred', u, { withCredentials: true, minDelay: 200 }), other(star));
  await waitSnap(page, 'exact', (x) => x.ready, 'credentialed stream with the exact origin');
  await waitSnap(page, 'star', (x) => x.ready, 'uncredentialed stream with *');
  await publish([{ channel: ch, data: 'cross-origin' }]);
  await waitSnap(page, 'exact', (x) => x.events.length === 1, 'the event (exact)');
  await waitSnap(page, 'star', (x) => x.events.length === 1, 'the event (star)');
  const s = await waitSnap(page, 'starCred', (x) => x.stats.totalFailures >= 2, 'credentialed stream refused by *');
  assert.equal(s.ready, null);
  assert.equal(s.events.length, 0);
  await page.evaluate(() => window.T.starCred.s.close());
});

btest('helper: channels and a filter object are encoded by the helper (a "#" pattern and a filter with " ", "+", "#", "&" reach the bridge); a "#" in a URL string too; 404 rejects ready', async (t) => {
  const b = await bridge(t);
  const ch = `pub.${uniq()}`;
  const note = 'a b+c#d&e=f%';
  const page = await helperPage(t, b.url);
  // the URL form, the options alone, a "#" written in a URL string, a filter
  await page.evaluate((c) => window.openHelper('list', '/events', { channels: [`${c}.#`] }), ch);
  await page.evaluate((c) => window.openHelper('alone', null, { channels: [`${c}.#`] }), ch);
  await page.evaluate((c) => window.openHelper('raw', `/events?channel=${c}.#`), ch);
  await page.evaluate((c, n) => window.openHelper('filtered', '/events', { channels: [`${c}.#`], filter: { state: 'done', note: n } }),
    ch, note);
  await page.evaluate(() => window.openHelper('missing', '/events/00000000-0000-4000-8000-000000000000'));
  for (const name of ['list', 'alone', 'raw', 'filtered']) await waitSnap(page, name, (x) => x.ready, `${name} ready`);
  await publish([
    { channel: ch, data: { state: 'done', note, i: 1 }, asJson: true },
    { channel: `${ch}.x.y`, data: { state: 'running', note, i: 2 }, asJson: true },
    { channel: `${ch}.x`, data: { state: 'done', note, i: 3 }, asJson: true },
    { channel: `${ch}.x`, data: { state: 'done', note: 'a b c#d&e=f%', i: 4 }, asJson: true },
    { channel: `${ch}.x`, data: 'not json' },
    { channel: `${ch}x`, data: { state: 'done', note, i: 6 }, asJson: true },
  ]);
  const all = await rows(`channel = ${lit(ch)} OR channel LIKE ${lit(`${ch}.%`)}`);
  assert.equal(all.length, 5);
  const matching = all.filter((r) => r.data.startsWith('{') && JSON.parse(r.data).state === 'done' && JSON.parse(r.data).note === note);
  assert.deepEqual(matching.map((r) => JSON.parse(r.data).i), [1, 3]);
  for (const name of ['list', 'alone', 'raw']) {
    const s = await waitSnap(page, name, (x) => x.events.length >= all.length, `${name}: every event of ${ch}.#`);
    assertSameEvents(s.events, all, name);
  }
  const f = await waitSnap(page, 'filtered', (x) => x.events.length >= matching.length, 'the filtered events');
  await publish([{ channel: ch, data: { state: 'done', note, i: 7 }, asJson: true }]);
  const last = await rows(`channel = ${lit(ch)} AND data LIKE '%"i": 7%'`);
  const g = await waitSnap(page, 'filtered', (x) => x.events.length > f.events.length, 'a later filtered event');
  assertSameEvents(g.events, [...matching, ...last], 'filtered');
  const m = await waitSnap(page, 'missing', (x) => x.state === 'closed', 'the unknown subscription to stop');
  assert.equal(m.ready, null);
  assert.match(m.readyError, /status 404/);
  assert.deepEqual(m.closes, [{ status: 404, retryAfter: 0 }]);
});

// A short-lived JWT (HS256) for the token test; the secret is the test's.
function hsToken(secret, claims) {
  const b64u = (x) => Buffer.from(x).toString('base64url');
  const input = `${b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64u(JSON.stringify(claims))}`;
  return `${input}.${b64u(createHmac('sha256', secret).update(input).digest())}`;
}

btest('helper: a token cookie expires mid-stream -> auth-expired, the refresh hook renews the cookie, the stream goes on exactly', async (t) => {
  const secret = randomBytes(48);
  const keyFile = tmpPath(`jwt-${uniq()}.key`);
  writeFileSync(keyFile, secret);
  const b = await bridge(t, ['--jwt-key', keyFile, '--jwt-alg', 'HS256', '--jwt-leeway', '0']);
  const ch = `sec.${uniq()}`;
  const grant = (ttl) => hsToken(secret, { sub: 'browser', exp: Math.floor(Date.now() / 1000) + ttl, sse: { channels: [`${ch}.*`] } });
  const page = await helperPage(t, b.url);
  let issued = 0;
  await page.exposeFunction('issueToken', () => {
    issued++;
    return grant(3);
  });
  // the application's part: a cookie, and a hook that renews it
  await page.evaluate(async () => {
    document.cookie = `sse_token=${await window.issueToken()}; path=/; SameSite=Strict`;
    window.refreshCalls = [];
  });
  t.defer(() => page.evaluate(() => { document.cookie = 'sse_token=; Max-Age=0; path=/'; }).catch(() => {}));
  await page.evaluate((u) => window.openHelper('h', u, {
    refresh: async (why) => {
      window.refreshCalls.push(why);
      document.cookie = `sse_token=${await window.issueToken()}; path=/; SameSite=Strict`;
    },
  }, ['message', 'auth-expired']), `/events?channel=${ch}.*`);
  await waitSnap(page, 'h', (x) => x.ready, 'ready');
  const pub = publisher(`${ch}.x`, { batch: 2, pauseMs: 50 });
  t.defer(() => pub.stop());
  // two expiries, each renewed by the hook
  await waitSnap(page, 'h', (x) => x.stats.refreshes >= 2 && x.state === 'live', 'two refreshes', 30_000);
  await pub.stop();
  const want = await rows(`channel = ${lit(`${ch}.x`)}`);
  const s = await waitSnap(page, 'h', (x) => x.events.filter((e) => e.event === 'message').length >= want.length, `all ${want.length} events`);
  const expiries = s.events.filter((e) => e.event === 'auth-expired').length;
  assertSameEvents(s.events.filter((e) => e.event === 'message'), want, 'helper across token expiries');
  assert.ok(expiries >= 2, `${expiries} auth-expired events`);
  assert.equal(s.stats.duplicates, 0);
  assert.equal(s.state, 'live');
  const calls = await page.evaluate(() => window.refreshCalls);
  assert.ok(calls.length >= 2 && calls.every((w) => w === 'expired'), `refresh calls: ${calls}`);
  assert.ok(issued >= 3, `${issued} tokens issued`);
  console.log(`    token expiry: ${want.length} events compared across ${expiries} expiries, ${calls.length} refreshes`);
});

btest('helper: a token passed as `token` (access_token, --jwt-query on) expires -> the hook returns a new one, the stream goes on exactly', async (t) => {
  const secret = randomBytes(48);
  const keyFile = tmpPath(`jwt-${uniq()}.key`);
  writeFileSync(keyFile, secret);
  const b = await bridge(t, ['--jwt-key', keyFile, '--jwt-alg', 'HS256', '--jwt-leeway', '0', '--jwt-query', 'on']);
  const ch = `sec.${uniq()}`;
  const page = await helperPage(t, b.url);
  await page.exposeFunction('issueToken', () => hsToken(secret, {
    sub: 'browser', exp: Math.floor(Date.now() / 1000) + 3, sse: { channels: [`${ch}.*`] },
  }));
  // cookies ignore ports: an sse_token cookie left for 127.0.0.1 by another
  // test would come first (Authorization, then the cookie, then the query)
  await page.evaluate(() => { document.cookie = 'sse_token=; Max-Age=0; path=/'; });
  const first = await page.evaluate(() => window.issueToken());
  await page.evaluate((u, tk) => window.openHelper('h', u, {
    token: tk,
    refresh: () => window.issueToken(),
  }), `/events?channel=${ch}.*`, first);
  await waitSnap(page, 'h', (x) => x.ready, 'ready');
  const pub = publisher(`${ch}.x`, { batch: 2, pauseMs: 50 });
  t.defer(() => pub.stop());
  await waitSnap(page, 'h', (x) => x.stats.refreshes >= 1 && x.state === 'live', 'a refresh', 30_000);
  await pub.stop();
  const want = await rows(`channel = ${lit(`${ch}.x`)}`);
  const s = await waitSnap(page, 'h', (x) => x.events.length >= want.length, `all ${want.length} events`);
  assertSameEvents(s.events, want, 'helper across a token refresh');
  assert.equal(s.stats.duplicates, 0);
  assert.equal(s.state, 'live');
});
