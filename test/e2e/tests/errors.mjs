// Bad input: a 4xx (or 503) status with a JSON body {"error", "detail"},
// never a stream.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, sql, sqlValue } from '../lib/db.mjs';
import { curlStream, rawRequest, request } from '../lib/clients.mjs';
import { assertJsonError, qs } from '../lib/expect.mjs';
import { poll, withBridge } from '../lib/bridge.mjs';

const M = () => ENV.mainUrl;
const mainPort = () => Number(new URL(ENV.mainUrl).port);

async function expect400(cases) {
  for (const raw of cases) {
    const res = await rawRequest(mainPort(), raw);
    assertJsonError(res, 400, JSON.stringify(raw));
  }
}

test('400 for malformed HTTP', () => expect400([
  'GARBAGE\r\n\r\n',
  'GET /events?channel=pub.x HTTP/x.y\r\nHost: x\r\n\r\n',
  'GET /ev\x01ents?channel=pub.x HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n',
  'GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
  'GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
  'GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
]));

// RFC 9112 3.2 / RFC 7230 5.4: an HTTP/1.1 request without Host gets 400;
// RFC 9112 5.1 / RFC 7230 3.2.4: whitespace between a field name and the
// colon gets 400 (a request-smuggling vector behind proxies).
test('400 for requests HTTP/1.1 says a server MUST reject (no Host; space before colon)', () => expect400([
  'GET /events?channel=pub.x HTTP/1.1\r\n\r\n',
  'GET /events?channel=pub.x HTTP/1.1\r\nHost : x\r\n\r\n',
  'GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\nX-Pad\t: y\r\n\r\n',
]));

test('400 for a bad Last-Event-ID (header and query, ad hoc and subscription)', async () => {
  const sub = await sqlValue(`sse_subscribe_filter(ARRAY['job.${uniq()}'])`);
  const bad = ['abc', '-1', '1.5', '12abc', '0x10', '1e3', '99999999999999999999999'];
  for (const path of [`/events?channel=pub.${uniq()}`, `/events/${sub}`]) {
    for (const v of bad) {
      assertJsonError(await request(`${M()}${path}`, { headers: { 'Last-Event-ID': v } }), 400, `${path} Last-Event-ID: ${v}`);
      const sep = path.includes('?') ? '&' : '?';
      assertJsonError(await request(`${M()}${path}${sep}lastEventId=${encodeURIComponent(v)}`), 400, `${path} lastEventId=${v}`);
    }
  }
});

test('400 for a bad filter or a bad pattern', async () => {
  const ch = `pub.${uniq()}`;
  const filters = ['{bad', '{"a":', '[1,2]', '"text"', '42', 'null'];
  for (const f of filters) {
    assertJsonError(await request(`${M()}/events?${qs([['channel', ch], ['filter', f]])}`), 400, `filter=${f}`);
  }
  const patterns = [`${ch}..x`, `${ch}.`, `.${ch}`, `${ch}.a*`, `${ch}.#x`, `${ch}.a b`, `${ch}.é`, '', `${'a'.repeat(201)}`];
  for (const p of patterns) {
    assertJsonError(await request(`${M()}/events?${qs([['channel', p]])}`), 400, `channel=${p}`);
  }
  assertJsonError(await request(`${M()}/events`), 400, 'no channel at all');
});

test('403 for channels outside --public-channels (and with ad hoc off)', async (t) => {
  for (const p of ['secret.x', '#', '*', 'job.#', 'job.a.b', 'pubx.a', '*.a']) {
    assertJsonError(await request(`${M()}/events?${qs([['channel', p]])}`), 403, `channel=${p}`);
  }
  // one forbidden pattern among allowed ones
  assertJsonError(await request(`${M()}/events?${qs([['channel', 'pub.a'], ['channel', 'secret.b']])}`), 403, 'mixed');
  // allowed: inside pub.# and job.*
  for (const p of ['pub', 'pub.a', 'pub.#', 'pub.*.x', 'job.a', 'job.*']) {
    const res = await request(`${M()}/events?${qs([['channel', p]])}`);
    assert.equal(res.status, 200, `channel=${p} inside --public-channels: ${res.status} ${res.body}`);
  }
  const b = await withBridge(t, []);
  assertJsonError(await request(`${b.url}/events?channel=pub.a`), 403, 'ad hoc without --public-channels');
});

test('404 for unknown, malformed and expired subscriptions', async () => {
  assertJsonError(await request(`${M()}/events/1b4e28ba-2fa1-11d2-883f-0016d3cca427`), 404, 'unknown uuid');
  const res = await request(`${M()}/events/not-a-uuid`);
  assert.ok(res.status === 404 || res.status === 400, `malformed uuid -> ${res.status}`);
  assertJsonError(res, res.status, 'malformed uuid');
  const id = await sqlValue(`sse_subscribe_filter(ARRAY['job.${uniq()}'], '{}', '1 minute')`);
  assert.equal((await request(`${M()}/events/${id}`)).status, 200, 'fresh subscription');
  await sql(`UPDATE sse_bridge.subscriptions SET last_seen = now() - interval '1 hour' WHERE id = ${lit(id)};
             SELECT sse_expire();`);
  assertJsonError(await request(`${M()}/events/${id}`), 404, 'expired subscription');
  const dropped = await sqlValue(`sse_subscribe_filter(ARRAY['job.${uniq()}'])`);
  await sql(`SELECT sse_unsubscribe(${lit(dropped)});`);
  assertJsonError(await request(`${M()}/events/${dropped}`), 404, 'dropped subscription');
});

test('431 for an oversize request line or oversize headers', async () => {
  const big = 'a'.repeat(256 * 1024);
  const cases = [
    `GET /events?channel=pub.x&pad=${big} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\nX-Pad: ${big}\r\n\r\n`,
    `GET /events?channel=pub.x HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 4000 }, (_, i) => `X-H${i}: ${'v'.repeat(60)}\r\n`).join('')}\r\n`,
  ];
  for (const raw of cases) {
    assertJsonError(await rawRequest(mainPort(), raw), 431, `${raw.length} bytes`);
  }
});

test('405 for other methods, 404 for other paths', async () => {
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    for (const path of ['/events?channel=pub.x', '/healthz']) {
      assertJsonError(await request(`${M()}${path}`, { method }), 405, `${method} ${path}`);
    }
  }
  for (const path of ['/', '/nope', '/events/', '/eventsx?channel=pub.x', '/healthz/x', '/metrics/x']) {
    assertJsonError(await request(`${M()}${path}`), 404, `GET ${path}`);
  }
});

test('503 with Retry-After over --max-clients, accepted again after a client leaves', async (t) => {
  const b = await withBridge(t, ['--public-channels', 'pub.#', '--max-clients', '2']);
  const url = `${b.url}/events?channel=pub.${uniq()}`;
  const s1 = curlStream(url);
  const s2 = curlStream(url);
  t.defer(s1.close);
  t.defer(s2.close);
  await s1.waitReady();
  await s2.waitReady();
  const res = await request(url);
  const body = assertJsonError(res, 503, 'third client');
  assert.match(res.headers['retry-after'] || '', /^\d+$/, `Retry-After: ${res.headers['retry-after']}`);
  t.note(`503 body ${JSON.stringify(body)}`);
  await s1.close();
  const s3 = await poll(async () => {
    const r = await request(url);
    return r.status === 200 ? r : null;
  }, 'a free slot after a client left', { timeoutMs: 10_000, everyMs: 100 });
  assert.equal(s3.status, 200);
});
