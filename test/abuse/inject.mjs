// SQL injection: hostile values through channel, filter, Last-Event-ID
// (header and query) and subscription paths. Each gets the documented 4xx
// with a JSON body and never a stream; the database is unchanged and the
// bridge healthy afterwards. Hostile filters that are valid JSON objects
// are data: they open a stream that matches exactly the events carrying
// those literal keys and values. When the server log is readable, the
// statements the bridge sent are checked too (its sessions run with
// log_statement = all): hostile text appears only as a bound parameter.
import fs from 'node:fs';
import { Sse, check, errorProblem, exchange, httpGet, note, show } from './lib.mjs';

const MARK = 'abuse_inj';
const enc = encodeURIComponent;

// The database state that no request may change.
async function snapshot(psql) {
  return (
    await psql.q(`SELECT
      (SELECT string_agg(id || ':' || v, ',' ORDER BY id) FROM abuse_canary),
      (SELECT string_agg(id::text, ',') FROM x),
      (SELECT count(*) FROM sse_bridge.events),
      (SELECT count(*) FROM sse_bridge.subscriptions),
      (SELECT count(*) FROM pg_class WHERE relnamespace IN ('public'::regnamespace, 'sse_bridge'::regnamespace)),
      (SELECT pruned_through FROM sse_bridge.meta)`)
  ).join('\n');
}

async function rejected(port, name, target, statuses, headers = {}) {
  let req = `GET ${target} HTTP/1.1\r\nHost: t\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  const ex = await exchange(port, Buffer.from(req + '\r\n', 'utf8'), { timeout: 3000 });
  const p = errorProblem(ex, statuses);
  check(`inject: ${name} -> ${statuses.join('/')}`, !p, p || '');
}

export async function injectChecks(b, psql, serverLog) {
  const p = b.port;
  const sub = await psql.one("SELECT sse_subscribe_filter(ARRAY['pub.inj'])");
  const before = await snapshot(psql);
  const logStart = serverLog ? fs.statSync(serverLog).size : 0;

  // ---- channel
  const badChannels = [
    `pub.a'); DROP TABLE abuse_canary; -- ${MARK}`,
    `pub.a' OR '1'='1`,
    `'; DROP TABLE x; --`,
    'pub.a"b',
    'pub.a\\b',
    'pub.a\\',
    'pub.a,pub.b',
    'pub.$1',
    'pub.{a}',
    'pub.a\r\nX-Injected: 1',
    'pub.é',
    'pub.*a',
    'pub..a',
    '',
  ];
  for (const c of badChannels) await rejected(p, `channel ${JSON.stringify(c)}`, `/events?channel=${enc(c)}`, [400]);
  await rejected(p, 'channel with a %00 escape', '/events?channel=pub.a%00b', [400]);
  await rejected(p, "channel with a raw quote (pub.a')", "/events?channel=pub.a'", [400]);
  await rejected(p, 'channel in a second parameter', `/events?channel=pub.a&channel=${enc(`x' OR 1=1 -- ${MARK}`)}`, [400]);
  await rejected(p, 'valid channel outside --public-channels', `/events?channel=${enc('secret.abuse_inj')}`, [403]);

  // ---- filter (not JSON objects)
  const badFilters = [
    `'); DROP TABLE abuse_canary; -- ${MARK}`,
    `{"a": "b'); DROP TABLE x; --"`,
    `{"a":1} OR 1=1`,
    `{"a":1}; DROP TABLE x`,
    '["a"]',
    '"a"',
    '1',
    'null',
    `{"a":"\\u0000"}`,
    `{"\\u0000${MARK}":1}`,
    `{"a":"\\"}`,
    `{'a':'b'}`,
    '{"a":1}}',
  ];
  for (const f of badFilters) await rejected(p, `filter ${JSON.stringify(f)}`, `/events?channel=pub.a&filter=${enc(f)}`, [400]);
  await rejected(p, 'filter with a raw %00', `/events?channel=pub.a&filter=%7B%22a%22%3A%22%00%22%7D`, [400]);

  // ---- Last-Event-ID, header and query
  const badIds = [
    '1; DROP TABLE x',
    `1; DROP TABLE abuse_canary; -- ${MARK}`,
    '1 OR 1=1',
    "1' OR '1'='1",
    '-1',
    '+1',
    '0x10',
    '1e3',
    '1.5',
    '99999999999999999999',
    '9223372036854775808',
    '18446744073709551616',
    '1 2',
    ' ',
    '１', // fullwidth digit
    '5-0D23BA48', // positions: lowercase hex only
    '5-00000000', // a row's fingerprint is never 0
    '5-0d23ba4',
    '5-',
    '5-0-0',
    '-0d23ba48',
  ];
  for (const id of badIds) {
    await rejected(p, `Last-Event-ID header ${JSON.stringify(id)}`, '/events?channel=pub.a', [400], { 'Last-Event-ID': id });
    await rejected(p, `lastEventId query ${JSON.stringify(id)}`, `/events?channel=pub.a&lastEventId=${enc(id)}`, [400]);
    await rejected(p, `lastEventId query ${JSON.stringify(id)} on a subscription`, `/events/${sub}?lastEventId=${enc(id)}`, [400]);
  }
  await rejected(p, 'empty lastEventId query', '/events?channel=pub.a&lastEventId=', [400]);
  await rejected(p, 'lastEventId given twice', '/events?channel=pub.a&lastEventId=1&lastEventId=2', [400]);
  await rejected(p, 'Last-Event-ID header given twice', '/events?channel=pub.a', [400], {
    'Last-Event-ID': '1',
    'last-event-id': '2',
  });

  // surrounding blanks are tolerated; the largest id is a valid one
  for (const [name, target, headers] of [
    ['Last-Event-ID header " 3\t"', '/events?channel=pub.a', { 'Last-Event-ID': ' 3\t' }],
    ['lastEventId query "%203%20"', '/events?channel=pub.a&lastEventId=%203%20'],
    ['lastEventId query 9223372036854775807', '/events?channel=pub.a&lastEventId=9223372036854775807'],
    ['Last-Event-ID header "3-0"', '/events?channel=pub.a', { 'Last-Event-ID': '3-0' }],
  ]) {
    // accepted = a 200 event stream (a refused id is a 400 before any
    // stream); `ready` follows the replay, which here may cross the whole
    // log (the ASan pass runs after churn wrote some 500 MB of events to
    // it), so it is not waited for: a deadline, not a speed check
    const s = new Sse(p, target, { headers });
    const ok = await s.wait((x) => x.res, 20000);
    s.close();
    check(`inject: ${name} opens a stream`, !!ok && ok.status === 200 && s._stream, show(s.res?.head || ''));
  }

  // ---- subscription paths
  const badPaths = [
    "/events/'%20OR%201=1--",
    `/events/'%20OR%20'1'='1'--${MARK}`,
    "/events/';DROP%20TABLE%20x;--",
    '/events/abc',
    '/events/00000000-0000-0000-0000-00000000000g',
    "/events/00000000-0000-0000-0000-000000000000'--",
    '/events/00000000-0000-0000-0000-000000000000', // well-formed, unknown
    `/events/${sub}'`,
    `/events/${sub}%27%20OR%201=1--`,
    `/events/${sub}/x`,
    `/events/${sub};DROP%20TABLE%20x`,
    `/events/${sub.replace(/-/g, '')}`,
    `/events/{${sub}}`,
    `/events/${enc(sub)}%00`,
    '/events/%30%30%30%30%30%30%30%30-0000-0000-0000-000000000000',
    `/events/${'a'.repeat(300)}`,
  ];
  for (const path of badPaths) await rejected(p, `path ${path.slice(0, 70)}`, path, [404]);
  // a raw space ends the request target: malformed
  {
    const ex = await exchange(p, `GET /events/' OR 1=1-- HTTP/1.1\r\nHost: t\r\n\r\n`, { timeout: 3000 });
    const e = errorProblem(ex, [400, 404]);
    check('inject: path with raw spaces -> 400/404', !e, e || '');
  }

  // ---- nothing changed, the bridge is healthy
  const after = await snapshot(psql);
  // psql -A: one row, columns joined with |
  const canary = (snap) => snap.split('|').slice(0, 2).join('|') === '1:one,2:two,3:three|42';
  check('inject: canary tables present with their rows before the attempts', canary(before), JSON.stringify(before));
  check('inject: canary tables, event count, subscriptions and relations unchanged', canary(after) && after === before, `${JSON.stringify(before)} -> ${JSON.stringify(after)}`);
  const h = await httpGet(p, '/healthz');
  check('inject: bridge healthy afterwards', h.res?.status === 200 && b.alive(), show(h.ex.buf));

  // ---- hostile but valid filters are data
  const key = `k'); DROP TABLE abuse_canary; -- ${MARK}`;
  const val = `v\\' OR '1'='1" \\"`;
  const filter = { [key]: val, 'q"\\': ['a\'b', 1] };
  const match = JSON.stringify({ ...filter, n: 'match', extra: 1 });
  const miss = JSON.stringify({ [key]: `${val}x`, 'q"\\': ['a\'b', 1], n: 'miss' });
  const dq = (s) => `$abuse$${s}$abuse$`;
  // the miss commits before the match: delivery is in id order, so a
  // wrongly delivered miss would arrive before the match
  {
    const s = new Sse(p, `/events?channel=pub.injf&filter=${enc(JSON.stringify(filter))}`);
    const ready = await s.ready();
    check('inject: hostile valid filter object opens an ad-hoc stream', !!ready, show(s.res?.head || ''));
    if (ready) {
      await psql.q(`SELECT sse_publish('pub.injf', ${dq(miss)}); SELECT sse_publish('pub.injf', ${dq(match)});`);
      const got = await s.wait((x) => x.events.find((e) => e.event !== 'ready'), 5000);
      const evs = s.events.filter((e) => e.event !== 'ready');
      check(
        'inject: the hostile filter matches its literal keys and values only (ad hoc)',
        got && evs.length === 1 && JSON.parse(evs[0].data).n === 'match',
        JSON.stringify(evs.map((e) => e.data)),
      );
    }
    s.close();
  }
  {
    const u = await psql.one(`SELECT sse_subscribe_filter(ARRAY['pub.injs'], ${dq(JSON.stringify(filter))}::jsonb)`);
    const s = new Sse(p, `/events/${u}`);
    const ready = await s.ready();
    check('inject: subscription with a hostile filter opens', !!ready, show(s.res?.head || ''));
    if (ready) {
      await psql.q(`SELECT sse_publish('pub.injs', ${dq(miss)}); SELECT sse_publish('pub.injs', ${dq(match)});`);
      const got = await s.wait((x) => x.events.find((e) => e.event !== 'ready'), 5000);
      const evs = s.events.filter((e) => e.event !== 'ready');
      check(
        'inject: the hostile filter matches its literal keys and values only (subscription)',
        got && evs.length === 1 && JSON.parse(evs[0].data).n === 'match',
        JSON.stringify(evs.map((e) => e.data)),
      );
    }
    s.close();
    await psql.q(`SELECT sse_unsubscribe('${u}')`);
  }
  const final = await snapshot(psql);
  check('inject: canary tables intact after the streams', canary(final), JSON.stringify(final));
  await psql.q(`SELECT sse_unsubscribe('${sub}')`);

  // ---- what the bridge sent to the server
  if (!serverLog) {
    note('inject: no server log given; statement check skipped');
    return;
  }
  const pids = new Set((await psql.q("SELECT pid FROM pg_stat_activity WHERE application_name = 'sse-bridge'")).map(Number));
  const text = fs.readFileSync(serverLog, 'latin1').slice(logStart);
  const mine = text.split('\n').filter((l) => {
    const m = /^\S+ \S+ \S+ \[(\d+)\]/.exec(l);
    return m && pids.has(Number(m[1]));
  });
  const stmts = mine.filter((l) => /LOG:\s+(statement|execute)/.test(l));
  const bad = mine.filter((l) => l.includes(MARK) && !/DETAIL:\s+parameters:/.test(l));
  const bound = stmts.filter((l) => /execute /.test(l)).length;
  check(
    "inject: the bridge's statements are logged, prepared with bound parameters",
    pids.size > 0 && bound > 0,
    `${pids.size} bridge sessions, ${stmts.length} statements, ${bound} prepared executions`,
  );
  check(
    'inject: no hostile text in any statement the bridge sent (parameters only)',
    bad.length === 0,
    bad.slice(0, 3).join(' | '),
  );
}
