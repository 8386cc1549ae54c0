// Secrecy: a request for a non-public channel gets a 403 that is the same,
// byte for byte, whatever exists on that channel; subscription ids never
// reach the bridge's log (info level) or a NOTIFY payload, whatever happens
// to the subscription.
import { Psql, Sse, check, exchange, httpGet, parseResponse, show, until } from './lib.mjs';

const enc = encodeURIComponent;

async function raw(port, target, headers = {}) {
  let req = `GET ${target} HTTP/1.1\r\nHost: t\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  const ex = await exchange(port, req + '\r\n', { timeout: 3000 });
  // a Date header, if the bridge ever sends one, is the only thing allowed
  // to differ
  return ex.buf.toString('latin1').replace(/\r\nDate: [^\r]*/i, '');
}

async function forbiddenIdentical(b, psql) {
  const p = b.port;
  await psql.q(`SELECT sse_publish('secret.a', '{"x":1}');
    SELECT sse_publish('secret.a', 'two', 'named');
    SELECT sse_publish('secret.closed', 'bye');
    SELECT sse_close('secret.closed');
    SELECT sse_subscribe_filter(ARRAY['secret.sub']);`);
  const cases = [
    ['channel with events', '/events?channel=secret.a'],
    ['channel that never existed', '/events?channel=zz9.plural.z.alpha'],
    ['channel closed with sse_close', '/events?channel=secret.closed'],
    ['channel only a subscription names', '/events?channel=secret.sub'],
    ['channel with events, lastEventId=0', '/events?channel=secret.a&lastEventId=0'],
    ['never-used channel, lastEventId=0', '/events?channel=secret.none&lastEventId=0'],
    ['channel with events and a matching filter', `/events?channel=secret.a&filter=${enc('{"x":1}')}`],
    ['never-used channel with a filter', `/events?channel=secret.none&filter=${enc('{"x":1}')}`],
    ['wildcard over channels with events', '/events?channel=secret.*'],
    ['wildcard over nothing', '/events?channel=nothing.*'],
    ['everything (#)', '/events?channel=%23'],
    ['public plus a channel with events', '/events?channel=pub.a&channel=secret.a'],
    ['public plus a never-used channel', '/events?channel=pub.a&channel=secret.none'],
    ['channel with events, Last-Event-ID header', '/events?channel=secret.a', { 'Last-Event-ID': '1' }],
    ['never-used channel, Last-Event-ID header', '/events?channel=secret.none', { 'Last-Event-ID': '1' }],
  ];
  const ref = await raw(p, cases[0][1]);
  const r = parseResponse(Buffer.from(ref, 'latin1'));
  let body = null;
  try {
    body = JSON.parse(r.body.toString());
  } catch {
    /* checked below */
  }
  check(
    'secrecy: non-public channel gets 403 with a JSON body that names nothing',
    r?.status === 403 && body && typeof body.error === 'string' && !/secret/.test(ref),
    show(ref),
  );
  const diff = [];
  for (const [name, target, headers] of cases.slice(1)) {
    const got = await raw(p, target, headers);
    if (got !== ref) diff.push(`${name}: ${show(got)}`);
  }
  check(
    `secrecy: the 403 is byte-identical across ${cases.length} requests (events, none, closed, subscribed, wildcards)`,
    diff.length === 0,
    diff.join(' | '),
  );
}

// Print notifications received so far: psql shows them after each command.
async function notifications(listener) {
  const lines = await listener.q('SELECT 1');
  return lines
    .map((l) => /^Asynchronous notification "([^"]+)" with payload "(.*)" received/.exec(l))
    .filter(Boolean)
    .map((m) => ({ channel: m[1], payload: m[2] }));
}

async function uuidSecrecy(b, psql, db) {
  const p = b.port;
  const listener = new Psql(db);
  await listener.q('LISTEN sse_bridge; LISTEN abuse_sync;');
  const seen = [];
  const ids = [];
  const newSub = async (channels, ttl = '1 hour') => {
    const u = await psql.one(`SELECT sse_subscribe_filter(ARRAY[${channels.map((c) => `'${c}'`).join(',')}], '{}', '${ttl}')`);
    ids.push(u);
    return u;
  };
  const stepFail = [];
  // channel names of their own, so that a rerun on the same database does
  // not meet earlier close events
  const tag = `t${Date.now().toString(36)}`;
  const step = (ok, what) => {
    if (!ok) stepFail.push(what);
  };

  // U1: connect, event, reconnect with Last-Event-ID (upper case id), then
  // left alone until it expires; then asked for again
  const u1 = await newSub([`sec.u1.${tag}`], '2 seconds');
  {
    const s = new Sse(p, `/events/${u1}`);
    step(await s.ready(), 'u1 connect');
    await psql.q(`SELECT sse_publish('sec.u1.${tag}', 'hello')`);
    const e = await s.wait((x) => x.events.find((ev) => ev.data === 'hello'));
    step(e, 'u1 event');
    s.close();
    const s2 = new Sse(p, `/events/${u1.toUpperCase()}`, { headers: { 'Last-Event-ID': e ? e.id : '0' } });
    step(await s2.ready(), 'u1 reconnect');
    s2.close();
  }
  // U2: connect, change patterns and filter live, event, unsubscribe while
  // connected (the stream ends), then asked for again
  const u2 = await newSub([`sec.u2.${tag}`]);
  {
    const s = new Sse(p, `/events/${u2}`);
    step(await s.ready(), 'u2 connect');
    await psql.q(`SELECT sse_subscription_add('${u2}', ARRAY['sec.u2b.${tag}']);
      SELECT sse_subscription_set_filter('${u2}', '{"k":1}');
      SELECT sse_subscription_remove('${u2}', ARRAY['sec.u2.${tag}']);`);
    // the change applies live: poll by publishing until one arrives
    const got = await until(
      async () => {
        await psql.q(`SELECT sse_publish('sec.u2b.${tag}', '{"k":1}')`);
        return s.wait((x) => x.events.find((ev) => ev.data === '{"k": 1}' || ev.data === '{"k":1}'), 300);
      },
      { timeout: 5000, interval: 1 },
    );
    step(got, 'u2 live change');
    await psql.q(`SELECT sse_unsubscribe('${u2}')`);
    step(await s.wait((x) => x.closed, 5000), 'u2 stream ends on unsubscribe');
    s.close();
  }
  // U3: connect, close its channel (close event, 204 afterwards)
  const u3 = await newSub([`sec.u3.${tag}`]);
  {
    const s = new Sse(p, `/events/${u3}`);
    step(await s.ready(), 'u3 connect');
    await psql.q(`SELECT sse_close('sec.u3.${tag}')`);
    step(await s.wait((x) => x.closed, 5000), 'u3 stream ends on close');
    s.close();
    const ce = s.events.find((e) => e.event === 'close');
    step(ce, 'u3 close event');
    // once the close is behind the client, the subscription answers 204
    const again = await exchange(p, `GET /events/${u3} HTTP/1.1\r\nHost: t\r\nLast-Event-ID: ${ce?.id}\r\n\r\n`);
    step(parseResponse(again.buf)?.status === 204, `u3 again: ${show(again.buf, 60)}`);
  }
  // U4: never existed
  const u4 = await psql.one('SELECT gen_random_uuid()');
  ids.push(u4);
  const r4 = await httpGet(p, `/events/${u4}`);
  step(r4.res?.status === 404, 'u4 unknown -> 404');
  // the ids in malformed requests too
  for (const t of [`/events/${u2}x`, `/events/${u2}/`, `/events?channel=${u3}`, `/events?channel=pub.a&filter=${u1}`]) {
    await httpGet(p, t);
  }
  const u2b = await httpGet(p, `/events/${u2}`);
  step(u2b.res?.status === 404, 'u2 after unsubscribe -> 404');
  // U1 expires (ttl 2 s; the bridge runs sse_expire every second)
  const gone = await until(async () => (await psql.one(`SELECT count(*) FROM sse_bridge.subscriptions WHERE id = '${u1}'`)) === '0', {
    timeout: 15000,
    interval: 250,
  });
  step(gone, 'u1 expired');
  const r1 = await httpGet(p, `/events/${u1}`);
  step(r1.res?.status === 404, 'u1 after expiry -> 404');
  // the extension's own errors do not echo the id either
  const errs = await psql.q(`SELECT sse_subscription_add('${u3}', ARRAY['bad pattern']);
    SELECT sse_subscription_set_filter('${u3}', '[1]');
    SELECT sse_subscription_add('${u1}', ARRAY['sec.x']);`);
  check('secrecy: the subscription lifecycle ran (connect, reconnect, live change, unsubscribe, close, expire, unknown)', stepFail.length === 0, stepFail.join(', '));
  // a dropped or expired id answers exactly like one that never existed
  const n404 = [
    ['never existed', r4.ex.buf],
    ['unsubscribed', u2b.ex.buf],
    ['expired', r1.ex.buf],
    ['malformed', (await httpGet(p, '/events/not-a-uuid')).ex.buf],
  ].map(([k, v]) => [k, v.toString('latin1').replace(/\r\nDate: [^\r]*/i, '')]);
  const odd = n404.filter(([, v]) => v !== n404[0][1]);
  check(
    'secrecy: 404 is byte-identical for unknown, unsubscribed, expired and malformed ids',
    parseResponse(Buffer.from(n404[0][1], 'latin1'))?.status === 404 && odd.length === 0,
    odd.map(([k, v]) => `${k}: ${show(v)}`).join(' | ') || show(n404[0][1]),
  );

  // every notification up to a marker sent last
  await psql.q("NOTIFY abuse_sync, 'end'");
  const ok = await until(
    async () => {
      seen.push(...(await notifications(listener)));
      return seen.some((n) => n.channel === 'abuse_sync' && n.payload === 'end');
    },
    { timeout: 10000, interval: 100 },
  );
  await listener.close();

  const forms = (u) => [u.toLowerCase(), u.toLowerCase().replace(/-/g, ''), u.toLowerCase().slice(24)];
  const leaks = (text) => ids.flatMap((u) => forms(u).filter((f) => text.toLowerCase().includes(f)));
  const payloads = seen.filter((n) => n.channel === 'sse_bridge').map((n) => n.payload);
  const logText = b.logText();
  check(
    'secrecy: no subscription id in the bridge log at info level',
    logText.includes('listening on') && leaks(logText).length === 0,
    `${logText.split('\n').length} log lines; leaked: ${leaks(logText).join(',')}`,
  );
  check(
    'secrecy: no subscription id in any NOTIFY payload',
    ok && payloads.some((x) => /^s \d+$/.test(x)) && leaks(payloads.join('\n')).length === 0,
    `${payloads.length} payloads (${[...new Set(payloads.map((x) => x.split(' ')[0]))].join(',')}); ` +
      `leaked: ${leaks(payloads.join('\n')).join(',')}`,
  );
  check(
    "secrecy: the extension's errors about a subscription do not echo its id",
    errs.some((l) => /ERROR/.test(l)) && leaks(errs.join('\n')).length === 0,
    errs.join(' | ').slice(0, 400),
  );
  // ids are version-4 random uuids, all distinct
  const many = await psql.q(`SELECT sse_subscribe_filter(ARRAY['sec.many']) FROM generate_series(1, 200)`);
  const v4 = many.every((u) => /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/.test(u));
  check('secrecy: subscription ids are distinct random (v4) uuids', many.length === 200 && v4 && new Set(many).size === 200, many.slice(0, 2).join(' '));
  await psql.q(`SELECT sse_unsubscribe(id) FROM sse_bridge.subscriptions WHERE channels = ARRAY['sec.many']`);
}

export async function secrecyChecks(b, psql, db) {
  await forbiddenIdentical(b, psql);
  await uuidSecrecy(b, psql, db);
}
