// Token authentication checks (run by run.sh).  Two bridges:
//   A: a JWKS (RSA kid r1, EC kid e1), --jwt-issuer/--jwt-audience, the
//      default leeway (30 s), public channels pub.#, query tokens off;
//   B: an HMAC secret with --jwt-alg HS256, --jwt-leeway 0, query tokens on,
//      the cookie named "tok".
// Every refusal is a request that differs from an accepted one in one
// thing only, and the accepted one is checked too.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  Bridge, Psql, Sse, check, errorProblem, exchange, metrics, note, parseResponse, tally, until,
} from '../abuse/lib.mjs';

const env = process.env;
const tmp = env.AUTH_TMP;
const now = () => Math.floor(Date.now() / 1000);
const b64u = (b) => Buffer.from(b).toString('base64url');

// ------------------------------------------------------------ keys, tokens

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsa3 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const secret = crypto.randomBytes(48);
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });

const jwk = (k, kid) => ({ ...k.publicKey.export({ format: 'jwk' }), kid, use: 'sig' });
const jwksFile = path.join(tmp, 'jwks.json');
const writeJwks = (keys) => fs.writeFileSync(jwksFile, JSON.stringify({ keys }));
writeJwks([jwk(rsa, 'r1'), jwk(ec, 'e1')]);
const secretFile = path.join(tmp, 'secret');
fs.writeFileSync(secretFile, secret);

function sign(header, payload, key) {
  const input = `${b64u(JSON.stringify(header))}.${b64u(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  let sig;
  if (header.alg === 'HS256') sig = crypto.createHmac('sha256', key).update(input).digest();
  else if (header.alg === 'RS256') sig = crypto.sign('sha256', Buffer.from(input), key);
  else if (header.alg === 'ES256') sig = crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  else sig = Buffer.alloc(0);
  return `${input}.${b64u(sig)}`;
}

const claims = (extra = {}) => ({ sub: 'alice', iss: 'https://app.example', aud: 'sse', exp: now() + 600, ...extra });
const rs = (extra, kid = 'r1', key = rsa.privateKey) => sign({ alg: 'RS256', typ: 'JWT', kid }, claims(extra), key);
const es = (extra) => sign({ alg: 'ES256', kid: 'e1' }, claims(extra), ec.privateKey);
const hs = (extra) => sign({ alg: 'HS256' }, { sub: 'bob', exp: now() + 600, ...extra }, secret);

const issued = [];				// every token handed to a bridge: none may reach a log
const tok = (t) => {
  issued.push(t);
  return t;
};

// ------------------------------------------------------------ requests

const bearer = (t) => ({ Authorization: `Bearer ${t}` });

// An exchange that is expected to be refused (the bridge closes it).
async function refused(port, target, headers = {}) {
  let req = `GET ${target} HTTP/1.1\r\nHost: t\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  const ex = await exchange(port, req + '\r\n', { timeout: 3000 });
  const r = parseResponse(ex.buf);
  let body = null;
  try {
    body = r && JSON.parse(r.body.toString('utf8'));
  } catch { /* reported below */ }
  return { ex, r, body, status: r ? r.status : 0 };
}

function expectRefusal(name, res, status, error) {
  const problem = errorProblem(res.ex, [status]);
  const www = res.r && res.r.get('www-authenticate');
  if (problem) return check(name, false, problem);
  if (res.body.error !== error) return check(name, false, `error ${res.body.error}, want ${error}`);
  if (status === 401 && !/^Bearer\b/.test(www || '')) return check(name, false, `WWW-Authenticate ${www}`);
  return check(name, true, `${status} ${error}`);
}

// A stream expected to open: its `ready` arrives.
async function opens(port, target, headers = {}) {
  const s = new Sse(port, target, { headers });
  const ok = await s.ready(8000);
  return { s, ok: !!ok, status: s.res ? s.res.status : 0 };
}

async function expectOpen(name, port, target, headers) {
  const o = await opens(port, target, headers);
  check(name, o.ok, o.ok ? '' : `status ${o.status}`);
  o.s.close();
  return o.ok;
}

// ------------------------------------------------------------ bridges

const common = { bin: env.AUTH_BRIDGE, db: env.AUTH_DB, tmp, pidfile: env.AUTH_PIDFILE };
const A = new Bridge('a', {
  ...common,
  args: ['--jwt-key', jwksFile, '--jwt-issuer', 'https://app.example', '--jwt-audience', 'sse',
    '--public-channels', 'pub.#', '--log-level', 'debug', '--max-header-bytes', '32k', '--keepalive', '1'],
});
const B = new Bridge('b', {
  ...common,
  args: ['--jwt-key', secretFile, '--jwt-alg', 'HS256', '--jwt-leeway', '0', '--jwt-query', 'on',
    '--jwt-cookie', 'tok', '--log-level', 'debug', '--keepalive', '1'],
});

const psql = new Psql(env.AUTH_DB);
const publish = (ch, data) => psql.q(`SELECT sse_publish('${ch}', '${JSON.stringify(data)}'::jsonb)`);

async function refusals() {
  const p = A.port;
  expectRefusal('no token on a private channel: 401 with WWW-Authenticate', await refused(p, '/events?channel=job.1'), 401, 'unauthorized');
  await expectOpen('no token on a public channel opens', p, '/events?channel=pub.a');
  await expectOpen('RS256 token (kid r1) opens a granted channel', p, '/events?channel=job.1',
    bearer(tok(rs({ sse: { channels: ['job.*'] } }))));
  await expectOpen('ES256 token (kid e1) opens a granted channel', p, '/events?channel=job.1',
    bearer(tok(es({ sse: { channels: ['job.*'] } }))));
  expectRefusal('invalid token on a public channel: 401, never anonymous',
    await refused(p, '/events?channel=pub.a', bearer(tok('abc.def.ghi'))), 401, 'invalid_token');
  const noneTok = tok(sign({ alg: 'none', kid: 'r1' }, claims({ sse: { channels: ['job.*'] } }), null));
  expectRefusal('alg none', await refused(p, '/events?channel=job.1', bearer(noneTok)), 401, 'invalid_token');
  const confused = tok(sign({ alg: 'HS256', kid: 'r1' }, claims({ sse: { channels: ['job.*'] } }), rsaPem));
  expectRefusal('HS256 signed with the RS256 public key as the secret',
    await refused(p, '/events?channel=job.1', bearer(confused)), 401, 'invalid_token');
  expectRefusal('unknown kid', await refused(p, '/events?channel=pub.a', bearer(tok(rs({}, 'zz')))), 401, 'invalid_token');
  expectRefusal('wrong-type kid (an RS256 token naming the EC key)',
    await refused(p, '/events?channel=pub.a', bearer(tok(rs({}, 'e1')))), 401, 'invalid_token');
  const good = rs({ sse: { channels: ['job.*'] } });
  const [h, , s] = good.split('.');
  const tampered = tok(`${h}.${b64u(JSON.stringify(claims({ sse: { channels: ['#'] } })))}.${s}`);
  expectRefusal('tampered payload', await refused(p, '/events?channel=job.1', bearer(tampered)), 401, 'invalid_token');
  expectRefusal('empty signature', await refused(p, '/events?channel=job.1', bearer(tok(good.slice(0, good.lastIndexOf('.') + 1)))), 401, 'invalid_token');
  expectRefusal('expired beyond the leeway (exp 40 s ago, leeway 30 s)',
    await refused(p, '/events?channel=pub.a', bearer(tok(rs({ exp: now() - 40 })))), 401, 'token_expired');
  await expectOpen('expired inside the leeway (exp 20 s ago) is accepted', p, '/events?channel=pub.a',
    bearer(tok(rs({ exp: now() - 20 }))));
  const noExp = claims();
  delete noExp.exp;
  expectRefusal('missing exp', await refused(p, '/events?channel=pub.a',
    bearer(tok(sign({ alg: 'RS256', kid: 'r1' }, noExp, rsa.privateKey)))), 401, 'invalid_token');
  expectRefusal('nbf in the future (beyond the leeway)',
    await refused(p, '/events?channel=pub.a', bearer(tok(rs({ nbf: now() + 120 })))), 401, 'invalid_token');
  expectRefusal('wrong iss', await refused(p, '/events?channel=pub.a', bearer(tok(rs({ iss: 'https://evil.example' })))), 401, 'invalid_token');
  expectRefusal('wrong aud', await refused(p, '/events?channel=pub.a', bearer(tok(rs({ aud: 'other' })))), 401, 'invalid_token');
  await expectOpen('aud array containing the audience is accepted', p, '/events?channel=pub.a',
    bearer(tok(rs({ aud: ['api', 'sse'] }))));
  const big = tok(rs({ pad: 'x'.repeat(9000) }));
  expectRefusal('oversize token (over 8 KiB) in the header', await refused(p, '/events?channel=pub.a', bearer(big)), 431, 'token_too_large');
  expectRefusal('oversize token in the cookie', await refused(p, '/events?channel=pub.a', { Cookie: `sse_token=${big}` }), 431, 'token_too_large');
  expectRefusal('a bearer token that is not valid is not replaced by a valid cookie',
    await refused(p, '/events?channel=job.1', { ...bearer(tok('x.y.z')), Cookie: `sse_token=${good}` }), 401, 'invalid_token');
  await expectOpen('token in the default cookie sse_token', p, '/events?channel=job.1', { Cookie: `a=b; sse_token=${good}; c=d` });
  expectRefusal('access_token in the query while --jwt-query is off',
    await refused(p, `/events?channel=pub.a&access_token=${good}`), 401, 'invalid_request');
  expectRefusal('sub missing', await refused(p, '/events?channel=pub.a', bearer(tok(rs({ sub: undefined })))), 401, 'invalid_token');
}

async function authorization() {
  const p = A.port;
  const star = tok(rs({ sse: { channels: ['job.*'] } }));
  expectRefusal('pattern widening: job.# against a job.* grant',
    await refused(p, '/events?channel=job.%23', bearer(star)), 403, 'forbidden');
  await expectOpen('job.* against a job.* grant', p, '/events?channel=job.*', bearer(star));
  await expectOpen('job.* against a job.# grant', p, '/events?channel=job.*', bearer(tok(rs({ sse: { channels: ['job.#'] } }))));
  expectRefusal('a channel outside the grant', await refused(p, '/events?channel=news.1', bearer(star)), 403, 'forbidden');
  expectRefusal('a token without a grant opens no private channel',
    await refused(p, '/events?channel=job.1', bearer(tok(rs({}))),), 403, 'forbidden');

  // filter: the granted {"tenant":42} is ANDed with whatever the client asks
  const t42 = tok(rs({ sub: 'tenant-42', sse: { channels: ['job.#'], filter: { tenant: 42 } } }));
  const streams = {
    none: await opens(p, '/events?channel=job.%23', bearer(t42)),
    empty: await opens(p, `/events?channel=job.%23&filter=${encodeURIComponent('{}')}`, bearer(t42)),
    narrower: await opens(p, `/events?channel=job.%23&filter=${encodeURIComponent('{"kind":"x"}')}`, bearer(t42)),
  };
  for (const [k, o] of Object.entries(streams)) check(`filter ${k}: stream opens`, o.ok, `status ${o.status}`);
  expectRefusal('filter widening: a conflicting client filter {"tenant":43}',
    await refused(p, `/events?channel=job.%23&filter=${encodeURIComponent('{"tenant":43}')}`, bearer(t42)), 403, 'forbidden');
  await publish('job.1', { tenant: 43, kind: 'x', n: 1 });
  await publish('job.1', { tenant: 42, kind: 'y', n: 2 });
  await publish('job.2', { tenant: 42, kind: 'x', n: 3 });
  await publish('job.2', { tenant: 43, n: 4 });
  await publish('job.3', { tenant: 42, n: 5 });
  const ns = (o) => o.s.events.filter((e) => e.event !== 'ready').map((e) => JSON.parse(e.data).n);
  const want = { none: [2, 3, 5], empty: [2, 3, 5], narrower: [3] };
  for (const [k, o] of Object.entries(streams)) {
    await o.s.wait((s) => ns({ s }).at(-1) >= want[k].at(-1), 5000);
    const got = ns(o);
    check(`filter ${k}: sees exactly the granted tenant's events`, JSON.stringify(got) === JSON.stringify(want[k]),
      `got ${JSON.stringify(got)}`);
    o.s.close();
  }
}

async function bridgeB() {
  const p = B.port;
  const good = tok(hs({ sse: { channels: ['chat.*'] } }));
  await expectOpen('HS256: bearer', p, '/events?channel=chat.1', bearer(good));
  await expectOpen('HS256: the cookie named by --jwt-cookie', p, '/events?channel=chat.1', { Cookie: `tok=${good}` });
  await expectOpen('HS256: access_token with --jwt-query on', p, `/events?channel=chat.1&access_token=${good}`);
  expectRefusal('HS256 key: an RS256 token is refused', await refused(p, '/events?channel=chat.1',
    bearer(tok(sign({ alg: 'RS256' }, { sub: 'bob', exp: now() + 60, sse: { channels: ['chat.*'] } }, rsa.privateKey)))), 401, 'invalid_token');
  expectRefusal('HS256 key: expired with no leeway', await refused(p, '/events?channel=chat.1',
    bearer(tok(hs({ exp: now() - 1, sse: { channels: ['chat.*'] } })))), 401, 'token_expired');

  // expiry in the middle of a stream
  const shortLived = tok(hs({ exp: now() + 3, sse: { channels: ['chat.*'] } }));
  const o = await opens(p, '/events?channel=chat.1', bearer(shortLived));
  check('short-lived token: stream opens', o.ok, `status ${o.status}`);
  await publish('chat.1', { n: 1 });
  const got = await o.s.wait((s) => s.events.find((e) => e.event === 'auth-expired'), 15000);
  await o.s.wait((s) => s.closed, 5000);
  const names = o.s.events.map((e) => e.event);
  check('at exp the stream gets event: auth-expired and ends', !!got && o.s.closed && names.includes('message'),
    `events ${JSON.stringify(names)} closed=${o.s.closed}`);
  const data = got ? JSON.parse(got.data) : {};
  // no id line: the last event id stays the one of the last event received
  const msg = o.s.events.find((e) => e.event === 'message');
  check('auth-expired carries {"error":"token_expired"} and no id of its own',
    data.error === 'token_expired' && !!msg && got.id === msg.id, `data ${JSON.stringify(data)} id ${got && got.id} last ${msg && msg.id}`);
  expectRefusal('a reconnect with the expired token: 401 token_expired',
    await refused(p, '/events?channel=chat.1', bearer(shortLived)), 401, 'token_expired');
}

async function reload() {
  const p = A.port;
  const before = tok(rs({ sse: { channels: ['rot.*'] } }));
  const live = await opens(p, '/events?channel=rot.1', bearer(before));
  check('reload: a stream opened with kid r1', live.ok);
  // rotation: r1 leaves, r3 comes
  writeJwks([jwk(rsa3, 'r3'), jwk(ec, 'e1')]);
  process.kill(A.pid, 'SIGHUP');
  const reloaded = await until(() => /reload: 2 key\(s\)/.test(A.logText()), { timeout: 5000 });
  check('SIGHUP reloads the key file', !!reloaded);
  const newTok = tok(rs({ sse: { channels: ['rot.*'] } }, 'r3', rsa3.privateKey));
  await expectOpen('after the reload a token of the new key r3 opens', p, '/events?channel=rot.1', bearer(newTok));
  expectRefusal('after the reload a new request with the removed key r1 is refused',
    await refused(p, '/events?channel=rot.1', bearer(before)), 401, 'invalid_token');
  await publish('rot.1', { n: 7 });
  const still = await live.s.wait((s) => s.events.find((e) => e.data && JSON.parse(e.data).n === 7), 5000);
  check('the stream opened before the reload goes on', !!still && !live.s.closed);
  live.s.close();
  // a broken file: the previous keys stay
  fs.writeFileSync(jwksFile, '{"keys":[{"kty":"RSA"}]}');
  process.kill(A.pid, 'SIGHUP');
  const failed = await until(() => /previous keys stay in use/.test(A.logText()), { timeout: 5000 });
  check('a broken key file on SIGHUP is reported', !!failed);
  await expectOpen('and the previous keys stay in use', p, '/events?channel=rot.1', bearer(newTok));
}

// Owned subscriptions: sse_subscribe_filter(..., owner => 'alice') (extension
// 1.3).  Against an older installed extension the owner column is added to
// the test database's table by hand, which is what 1.3 stores.
async function owned() {
  const p = A.port;
  const has13 = (await psql.one(`SELECT count(*) FROM pg_catalog.pg_proc WHERE proname = 'sse_subscribe_filter' AND pronargs = 4`)) === '1';
  let sub;
  if (has13) {
    sub = await psql.one(`SELECT sse_subscribe_filter(ARRAY['own.x'], '{}', '1 hour', 'alice')`);
  } else {
    note('extension before 1.3: the owner column is added by hand');
    await psql.q('ALTER TABLE sse_bridge.subscriptions ADD COLUMN IF NOT EXISTS owner text');
    sub = await psql.one(`SELECT sse_subscribe_filter(ARRAY['own.x'])`);
    await psql.q(`UPDATE sse_bridge.subscriptions SET owner = 'alice' WHERE id = '${sub}'`);
  }
  const cap = await psql.one(`SELECT sse_subscribe_filter(ARRAY['own.x'])`);
  expectRefusal('owned subscription without a token: 401', await refused(p, `/events/${sub}`), 401, 'unauthorized');
  expectRefusal("another subject's owned subscription: 403",
    await refused(p, `/events/${sub}`, bearer(tok(rs({ sub: 'bob', sse: { channels: ['own.#'] } })))), 403, 'forbidden');
  expectRefusal('owned subscription with an invalid token: 401',
    await refused(p, `/events/${sub}`, bearer(tok(rs({ sub: 'alice', exp: now() - 100 })))), 401, 'token_expired');
  const o = await opens(p, `/events/${sub}`, bearer(tok(rs({ sub: 'alice' }))));
  check("the owner's token opens it, with no grant of its channels", o.ok, `status ${o.status}`);
  await publish('own.x', { n: 11 });
  const got = await o.s.wait((s) => s.events.find((e) => e.data && JSON.parse(e.data).n === 11), 5000);
  check('and the owned stream carries its events', !!got);
  o.s.close();
  // the owner's stream ends when its token expires (bridge B: no leeway)
  let bobs;
  if (has13) {
    bobs = await psql.one(`SELECT sse_subscribe_filter(ARRAY['own.y'], owner => 'bob')`);
  } else {
    bobs = await psql.one(`SELECT sse_subscribe_filter(ARRAY['own.y'])`);
    await psql.q(`UPDATE sse_bridge.subscriptions SET owner = 'bob' WHERE id = '${bobs}'`);
  }
  const short = await opens(B.port, `/events/${bobs}`, bearer(tok(hs({ exp: now() + 3 }))));
  check("the owner's short-lived token opens its subscription", short.ok, `status ${short.status}`);
  const ended = await short.s.wait((s) => s.events.find((e) => e.event === 'auth-expired'), 15000);
  await short.s.wait((s) => s.closed, 5000);
  check('and the owned stream ends with auth-expired when the token expires', !!ended && short.s.closed);
  await expectOpen('a subscription without an owner stays a capability: no token needed', p, `/events/${cap}`);
  expectRefusal('a capability with an invalid token: 401, never anonymous',
    await refused(p, `/events/${cap}`, bearer(tok('a.b.c'))), 401, 'invalid_token');
}

// The README's example: its signing code, run as written (with jwt.key in
// its directory), makes a cookie whose token bridge B accepts, granting the
// tenant's channels narrowed to the tenant's rows.
async function readme() {
  const text = fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'README.md'), 'utf8');
  const m = /<!-- test: file sse-token\.mjs -->\n```js\n([\s\S]*?)```/.exec(text);
  if (!check('README: the signing example is there', !!m)) return;
  const dir = fs.mkdtempSync(path.join(tmp, 'readme-'));
  fs.writeFileSync(path.join(dir, 'sse-token.mjs'), m[1]);
  fs.writeFileSync(path.join(dir, 'jwt.key'), secret);
  const cwd = process.cwd();
  process.chdir(dir);
  let cookie;
  try {
    const { sseCookie } = await import(path.join(dir, 'sse-token.mjs'));
    cookie = sseCookie({ id: 'user-17', tenant: 42 });
  } finally {
    process.chdir(cwd);
  }
  const t = /^sse_token=([^;]+); Path=\/; HttpOnly; Secure; SameSite=Strict$/.exec(cookie);
  if (!check('README: sseCookie returns a Set-Cookie value for sse_token', !!t, t ? '' : cookie)) return;
  tok(t[1]);
  const o = await opens(B.port, '/events?channel=tenant.42.order.%23', { Cookie: `tok=${t[1]}` });
  check("README: the bridge accepts the example's token for the tenant's channels", o.ok, `status ${o.status}`);
  expectRefusal("README: another tenant's channels are refused", await refused(B.port, '/events?channel=tenant.43.order.%23', bearer(t[1])), 403, 'forbidden');
  await publish('tenant.42.order.1', { tenant: 41, n: 1 });
  await publish('tenant.42.order.1', { tenant: 42, n: 2 });
  const got = await o.s.wait((s) => s.events.find((e) => e.data && JSON.parse(e.data).n === 2), 5000);
  const ns = o.s.events.filter((e) => e.event !== 'ready').map((e) => JSON.parse(e.data).n);
  check("README: the example's filter keeps the tenant's rows only", !!got && JSON.stringify(ns) === '[2]', JSON.stringify(ns));
  o.s.close();
}

function logs() {
  for (const b of [A, B]) {
    const text = b.logText();
    const leaks = [];
    for (const t of issued) {
      const parts = t.split('.');
      if (text.includes(t)) leaks.push('token');
      for (const part of parts.slice(1)) if (part.length >= 16 && text.includes(part)) leaks.push(part.slice(0, 12));
    }
    check(`bridge ${b.name}: no token, payload or signature in the log (${issued.length} tokens, log-level debug)`,
      leaks.length === 0, leaks.slice(0, 3).join(', '));
    check(`bridge ${b.name}: tokens are logged by subject and short hash`,
      /token [0-9a-f]{12} from the header accepted: sub (alice|bob)/.test(text));
  }
}

// /metrics counts verifications, cache hits and refusals.
async function counters() {
  const m = await metrics(A.port);
  const v = m && m.sse_bridge_token_verifications_total;
  const h = m && m.sse_bridge_token_cache_hits_total;
  const r = m && m.sse_bridge_token_refusals_total;
  check('/metrics: tokens verified, found in the cache and refused are counted', v > 10 && h > 0 && r > 10,
    `verified ${v}, cache hits ${h}, refused ${r}`);
}

async function main() {
  const okA = await A.start();
  const okB = await B.start();
  check('bridges start with --jwt-key', okA && okB, okA && okB ? '' : `${A.logText().slice(-300)} ${B.logText().slice(-300)}`);
  if (!okA || !okB) return;
  await refusals();
  await authorization();
  await bridgeB();
  await owned();
  await readme();
  await reload();
  await counters();
  logs();
}

try {
  await main();
} catch (e) {
  check('no exception', false, e.stack);
} finally {
  await A.stop();
  await B.stop();
  await psql.close();
}
note(`keys and logs in ${tmp}`);
console.log(`${tally.passed} passed, ${tally.failed} failed`);
process.exit(tally.failed ? 1 : 0);
