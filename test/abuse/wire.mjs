// Smuggling and limits, on the wire. Every request is followed, in the same
// write, by a pipelined second request that would replay an event if it
// were ever executed; the bridge answers one request per connection, so the
// second must produce no bytes and no work (the replay counters stay put).
import { Sse, check, errorProblem, exchange, metrics, parseResponse, show, until } from './lib.mjs';

const H = 'Host: t\r\n';
// executed, this would replay the event published on pub.smuggled (set
// once that event's id is known)
let SMUGGLED = '';

// Exactly one response and then the close: status, and for errors the JSON
// body; nothing after the body.
function oneResponse(ex, statuses) {
  const r = parseResponse(ex.buf);
  if (!r) return `no response head (end=${ex.end}, got ${show(ex.buf)})`;
  if (r.status >= 400) return errorProblem(ex, statuses);
  if (!statuses.includes(r.status)) return `status ${r.status}, want ${statuses.join('/')}: ${show(ex.buf)}`;
  if (!r.complete) return 'body shorter than Content-Length';
  if (r.get('content-type')?.startsWith('text/event-stream')) return 'a stream';
  if (r.rest.length) return `bytes after the response: ${show(r.rest)}`;
  if (ex.end === 'timeout') return 'connection left open';
  return null;
}

async function wireCase(port, name, bytes, statuses, { pipeline = true, parts } = {}) {
  const ex = await exchange(port, parts || [bytes + (pipeline ? SMUGGLED : '')]);
  const p = oneResponse(ex, statuses);
  check(`wire: ${name} -> ${statuses.join('/')}`, !p, p || '');
  return ex;
}

// A request head of exactly n bytes (request line + headers + blank line).
function headOfSize(n, target = '/healthz') {
  const base = `GET ${target} HTTP/1.1\r\n${H}X-Pad: \r\n\r\n`;
  return base.replace('X-Pad: ', `X-Pad: ${'p'.repeat(n - base.length)}`);
}

export async function wireChecks(b, psql, maxHead) {
  await psql.q("SELECT sse_publish('pub.smuggled', 'if you read this, a pipelined request ran')");
  // the bridge has read it once the head moves
  const head = Number(await psql.one('SELECT max(id) FROM sse_bridge.events'));
  SMUGGLED = `GET /events?channel=pub.smuggled&lastEventId=${head - 1} HTTP/1.1\r\n${H}\r\n`;
  await until(async () => (await metrics(b.port))?.sse_bridge_head_id >= head, { timeout: 10000 });
  const m0 = await metrics(b.port);
  const p = b.port;

  // ---- smuggling
  await wireCase(p, 'duplicate Content-Length (equal values)', `GET /healthz HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: 0\r\n\r\n`, [400]);
  await wireCase(
    p,
    'duplicate Content-Length (0 and the pipelined length)',
    `GET /healthz HTTP/1.1\r\n${H}Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n`,
    [400],
  );
  await wireCase(p, 'Content-Length list "0, 5"', `GET /healthz HTTP/1.1\r\n${H}Content-Length: 0, 5\r\n\r\n`, [400]);
  await wireCase(
    p,
    'Transfer-Encoding: chunked with Content-Length',
    `GET /healthz HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
    [400],
  );
  await wireCase(
    p,
    'Content-Length with Transfer-Encoding: chunked (CL first)',
    `GET /healthz HTTP/1.1\r\n${H}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    [400],
  );
  await wireCase(p, 'Transfer-Encoding: chunked on GET', `GET /healthz HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, [400]);
  await wireCase(
    p,
    'Transfer-Encoding hidden by obs-fold',
    `GET /healthz HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
    [400],
  );
  await wireCase(
    p,
    'request body on GET (the body is a request)',
    `GET /healthz HTTP/1.1\r\n${H}Content-Length: ${SMUGGLED.length}\r\n\r\n`,
    [400],
  );
  await wireCase(p, 'negative Content-Length', `GET /healthz HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, [400]);

  // ---- line endings and folding
  await wireCase(p, 'bare LF line endings (tolerated, one response)', `GET /healthz HTTP/1.1\nHost: t\n\n`, [200, 400]);
  await wireCase(p, 'bare CR inside the head', `GET /healthz HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n`, [400]);
  await wireCase(p, 'NUL in a header value', `GET /healthz HTTP/1.1\r\n${H}X-A: a\0b\r\n\r\n`, [400]);
  await wireCase(p, 'obs-fold in an ordinary header (400 or folded to SP)', `GET /healthz HTTP/1.1\r\n${H}X-A: b\r\n c\r\n\r\n`, [200, 400]);
  // folded, "5 6" is not an id: it must not be read as 5, 56 or dropped
  await wireCase(
    p,
    'obs-fold inside Last-Event-ID',
    `GET /events?channel=pub.none HTTP/1.1\r\n${H}Last-Event-ID: 5\r\n 6\r\n\r\n`,
    [400],
  );
  await wireCase(p, 'whitespace at the start of the first header line', `GET /healthz HTTP/1.1\r\n Host: t\r\n\r\n`, [400]);
  // RFC 9112 5.1: a server MUST reject whitespace between field name and colon
  await wireCase(p, 'whitespace before the colon of a header (RFC 9112 5.1)', `GET /healthz HTTP/1.1\r\n${H}X-Foo : bar\r\n\r\n`, [400]);
  await wireCase(
    p,
    'whitespace before the colon of Last-Event-ID (RFC 9112 5.1)',
    `GET /events?channel=pub.none HTTP/1.1\r\n${H}Last-Event-ID : 5\r\n\r\n`,
    [400],
  );

  // ---- size limits
  const longLine = `GET /healthz?${'a'.repeat(maxHead + 100)} HTTP/1.1\r\n${H}\r\n`;
  await wireCase(p, `request line over --max-header-bytes ${maxHead}`, longLine, [431]);
  let many = `GET /healthz HTTP/1.1\r\n${H}`;
  for (let i = 0; many.length < maxHead + 200; i++) many += `X-Pad-${i}: ${'v'.repeat(40)}\r\n`;
  await wireCase(p, `headers over --max-header-bytes ${maxHead}`, many + '\r\n', [431]);
  await wireCase(p, `head of exactly ${maxHead} bytes is accepted`, headOfSize(maxHead), [200]);
  await wireCase(p, `head of ${maxHead + 1} bytes gets 431`, headOfSize(maxHead + 1), [431]);
  {
    // the same oversized head in 256-byte writes
    const big = headOfSize(maxHead + 1) + SMUGGLED;
    const parts = [];
    for (let i = 0; i < big.length; i += 256) parts.push(big.slice(i, i + 256), 5);
    await wireCase(p, `head of ${maxHead + 1} bytes in 256-byte pieces gets 431`, '', [431], { parts });
  }
  {
    // one byte at a time up to the limit: still 431, nothing executed
    const big = headOfSize(maxHead + 1);
    const parts = [big.slice(0, maxHead - 8)];
    for (let i = maxHead - 8; i < big.length; i++) parts.push(big[i], 2);
    parts.push(SMUGGLED);
    await wireCase(p, 'the last bytes of an oversized head one at a time get 431', '', [431], { parts });
  }

  // ---- the pipelined requests never ran
  const m1 = await metrics(b.port);
  check(
    'wire: no pipelined request was executed (no replay, no event sent, no stream)',
    m1.sse_bridge_replayed_events_total === m0.sse_bridge_replayed_events_total &&
      m1.sse_bridge_events_sent_total === m0.sse_bridge_events_sent_total &&
      m1.sse_bridge_replay_pages_total === m0.sse_bridge_replay_pages_total &&
      m1.sse_bridge_streams === 0,
    `replayed ${m0.sse_bridge_replayed_events_total}->${m1.sse_bridge_replayed_events_total}, ` +
      `sent ${m0.sse_bridge_events_sent_total}->${m1.sse_bridge_events_sent_total}, streams ${m1.sse_bridge_streams}`,
  );
  // and the smuggled request is a working one: it does replay when sent alone
  const s = new Sse(b.port, `/events?channel=pub.smuggled&lastEventId=${head - 1}`);
  const got = await s.wait((x) => x.events.find((e) => e.data.includes('pipelined request ran')), 5000);
  s.close();
  check('wire: the pipelined request, sent on its own, does replay the event', !!got);

  // bytes after the head of a stream are read and dropped: 16 MiB of them
  // neither end the stream nor grow the bridge
  const rss0 = b.rssKiB();
  const f = new Sse(b.port, '/events?channel=pub.flood');
  if (await f.ready()) {
    const junk = Buffer.alloc(1 << 20, 'GET / HTTP/1.1\r\n');
    for (let i = 0; i < 16 && !f.closed; i++) {
      if (!f.sock.write(junk)) await new Promise((r) => f.sock.once('drain', r));
    }
    await psql.q("SELECT sse_publish('pub.flood', 'after the flood')");
    const e = await f.wait((x) => x.events.find((ev) => ev.data === 'after the flood'), 5000);
    const d = b.rssKiB() - rss0;
    check('wire: 16 MiB sent into an open stream are ignored; it keeps streaming', !!e && !f.closed, `closed=${f.closed}`);
    check('wire: ... and the bridge does not grow (< 1 MiB)', d < 1024, `VmRSS delta ${d} KiB`);
  } else {
    check('wire: flood stream opens', false, show(f.res?.head || ''));
  }
  f.close();
}

// --max-clients N: N streams held; the next connection gets 503 with
// Retry-After and a JSON body, its pipelined request is not run, and a slot
// freed is usable again.
export async function maxClientsChecks(b, n) {
  if (!SMUGGLED) SMUGGLED = `GET /events?channel=pub.smuggled HTTP/1.1\r\n${H}\r\n`;
  const held = [];
  for (let i = 0; i < n; i++) {
    const s = new Sse(b.port, '/events?channel=pub.hold');
    held.push(s);
    if (!(await s.ready(5000))) {
      check(`max-clients: stream ${i + 1} of ${n} opens`, false, show(s.res?.head || ''));
      held.forEach((x) => x.close());
      return;
    }
  }
  const ex = await exchange(b.port, `GET /healthz HTTP/1.1\r\n${H}\r\n` + SMUGGLED);
  const prob = errorProblem(ex, [503]);
  const r = parseResponse(ex.buf);
  const ra = r?.get('retry-after');
  check(`max-clients: connection ${n + 1} gets 503 with a JSON body, nothing after`, !prob, prob || '');
  check('max-clients: the 503 carries Retry-After (delta-seconds)', !!ra && /^\d+$/.test(ra), `Retry-After: ${ra}`);
  const ex2 = await exchange(b.port, `GET /events?channel=pub.hold HTTP/1.1\r\n${H}\r\n`);
  const r2 = parseResponse(ex2.buf);
  check(
    `max-clients: a stream request over the limit gets 503, never a stream`,
    r2?.status === 503 && !errorProblem(ex2, [503]),
    show(ex2.buf),
  );
  held[0].close();
  const ok = await until(
    async () => {
      const e = await exchange(b.port, `GET /healthz HTTP/1.1\r\n${H}\r\n`, { timeout: 2000 });
      return parseResponse(e.buf)?.status === 200;
    },
    { timeout: 5000, interval: 50 },
  );
  check('max-clients: a freed slot is usable again', !!ok);
  for (const s of held) s.close();
  const m = await until(async () => {
    const x = await metrics(b.port);
    return x && x.sse_bridge_streams === 0 ? x : null;
  });
  check('max-clients: rejections are counted', m && m.sse_bridge_rejected_total >= 2, `rejected_total ${m?.sse_bridge_rejected_total}`);
}
