// Allocation failures inside the bridge never answer a valid request with a
// client error. The fault-injection build (make bridge-fi) fails every Nth
// allocation while armed (SIGUSR1); for several N, many valid requests (ad
// hoc streams with percent-encoded channels and filters, Last-Event-ID,
// subscription streams, the helper script, /healthz) must each get the
// answer they ask for (200, or 204 for a preflight) or 503 with Retry-After
// and a JSON body {"error":"unavailable",...}. Never a 4xx, never another
// status. A connection the bridge closes without a byte (it could not even
// take the connection) is counted and allowed: clients retry on it as on a
// network error. Afterwards the bridge is disarmed, answers normally, and
// its sanitizer log is clean.
import net from 'node:net';
import { check, note, parseResponse, sanitizerReport, show, until } from './lib.mjs';

const enc = encodeURIComponent;

// One request; resolves with the first response (head, and body when it
// has a Content-Length) or how the connection ended without one.
function firstResponse(port, raw, timeout) {
  return new Promise((resolve) => {
    const chunks = [];
    let done = false;
    const s = net.connect(port, '127.0.0.1');
    const finish = (v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => finish({ end: 'timeout', buf: Buffer.concat(chunks) }), timeout);
    s.on('connect', () => s.write(raw));
    s.on('data', (d) => {
      chunks.push(d);
      const buf = Buffer.concat(chunks);
      const r = parseResponse(buf);
      if (!r) return;
      const stream = (r.get('content-type') || '').startsWith('text/event-stream');
      if (stream || r.complete) finish({ end: 'response', res: r, buf });
    });
    s.on('error', () => finish({ end: 'closed', buf: Buffer.concat(chunks) }));
    s.on('close', () => finish({ end: 'closed', buf: Buffer.concat(chunks) }));
  });
}

// What a response to a valid request may be; null when acceptable.
function judge(got, want) {
  if (got.end !== 'response') {
    if (got.end === 'closed' && got.buf.length === 0) return 'dropped';
    return `no complete response (${got.end}): ${show(got.buf)}`;
  }
  const r = got.res;
  if (r.status === want) return null;
  if (r.status !== 503) return `status ${r.status}: ${show(got.buf, 400)}`;
  if (!/^\d+$/.test(r.get('retry-after') || '')) return `503 without Retry-After: ${show(got.buf, 400)}`;
  let j;
  try {
    j = JSON.parse(r.body.toString('utf8'));
  } catch {
    return `503 body is not JSON: ${show(got.buf, 400)}`;
  }
  if (j.error !== 'unavailable' || typeof j.detail !== 'string') return `503 body ${show(r.body)}`;
  return null;
}

function requests(sub) {
  const filter = enc(JSON.stringify({ k: [1, 'x'], n: { m: 2.5 } }));
  const get = (target, headers = '') => `GET ${target} HTTP/1.1\r\nHost: t\r\n${headers}\r\n`;
  return [
    ['ad hoc, encoded channels and filter', get(`/events?channel=pub.a%2Eb&channel=pub.%23&channel=pub.*.x&filter=${filter}`), 200],
    ['ad hoc, Last-Event-ID', get('/events?channel=pub.a&channel=other.x', 'Last-Event-ID: 0\r\n'), 200],
    ['ad hoc, lastEventId and Origin', get(`/events?channel=pub.job&lastEventId=0&filter=${enc('{"k":1}')}`, 'Origin: http://a.example\r\n'), 200],
    ['subscription', get(`/events/${sub}`, 'Last-Event-ID: 0\r\n'), 200],
    ['subscription, upper-case id', get(`/events/${sub.toUpperCase()}?lastEventId=0`), 200],
    ['helper script', get('/sse-bridge.js'), 200],
    ['preflight', `OPTIONS /events?channel=pub.a HTTP/1.1\r\nHost: t\r\nOrigin: http://a.example\r\n\r\n`, 204],
    ['health', get('/healthz'), 200],
  ];
}

// startFi(n) starts the fault-injection bridge with SSE_BRIDGE_FAIL_EVERY=n, disarmed.
export async function faultChecks(startFi, psql, { everies, rounds }) {
  const sub = await psql.one("SELECT sse_subscribe_filter(ARRAY['pub.sub', 'pub.x.#'], '{\"k\": 1}')");
  await psql.q("SELECT sse_publish('pub.a.b', '{\"k\":1}'), sse_publish('pub.sub', '{\"k\":1}'), sse_publish('other.x', 'x')");
  const reqs = requests(sub);
  for (const n of everies) {
    const b = await startFi(n);
    if (!b) continue;
    try {
      process.kill(b.pid, 'SIGUSR1'); // arm
      const tally = {};
      const bad = [];
      let dropped = 0;
      for (let round = 0; round < rounds; round++) {
        // a batch at a time: concurrent, as independent clients reconnect
        const got = await Promise.all(reqs.map(([, raw]) => firstResponse(b.port, raw, 10000)));
        got.forEach((g, i) => {
          const [name, , want] = reqs[i];
          const p = judge(g, want);
          const key = g.res ? String(g.res.status) : g.end;
          tally[key] = (tally[key] || 0) + 1;
          if (p === 'dropped') dropped++;
          else if (p) bad.push(`${name}: ${p}`);
        });
      }
      process.kill(b.pid, 'SIGUSR2'); // disarm
      const m = await until(async () => {
        const g = await firstResponse(b.port, 'GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n', 5000);
        return g.res && g.res.status === 200 ? g.res.body.toString('utf8') : null;
      }, { timeout: 10000 });
      const injected = Number((/^sse_bridge_alloc_failures_injected_total (\d+)$/m.exec(m || '') || [])[1] || 0);
      const total = rounds * reqs.length;
      note(`faults N=${n}: ${total} requests, statuses ${JSON.stringify(tally)}, ${injected} allocations failed`);
      check(`faults N=${n}: the injector failed allocations`, injected > 0 && (tally['503'] || 0) > 0,
        `${injected} injected, ${tally['503'] || 0} answers 503`);
      check(`faults N=${n}: every valid request got its answer or 503 with Retry-After, never a 4xx`, bad.length === 0,
        bad.length ? `${bad.length} of ${total}: ${bad.slice(0, 5).join(' | ')}` : `${total} requests, ${dropped} closed before a byte`);
      // disarmed: the same requests get their answers
      const after = await Promise.all(reqs.map(([, raw]) => firstResponse(b.port, raw, 10000)));
      const wrong = after.map((g, i) => (g.res && g.res.status === reqs[i][2] ? null : `${reqs[i][0]}: ${show(g.buf, 200)}`)).filter(Boolean);
      check(`faults N=${n}: disarmed, every request gets its answer`, wrong.length === 0, wrong.slice(0, 3).join(' | '));
    } finally {
      const r = await b.stop();
      const rep = sanitizerReport(b.logText());
      check(`faults N=${n}: exits 0 on SIGTERM, no sanitizer report`, r && r.code === 0 && !r.killed && !rep,
        rep ? rep.slice(0, 1500) : JSON.stringify(r));
    }
  }
  await psql.q(`SELECT sse_unsubscribe('${sub}')`);
}
