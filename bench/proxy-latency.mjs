// node bench/proxy-latency.mjs DIRECT_URL PROXY_URL EVENTS INTERVAL_MS
// One stream straight to the bridge (HTTP/1.1), one through the proxy
// (HTTP/2 over TLS, certificate not checked); EVENTS events published one by
// one through a single psql; prints the extra time each event took through
// the proxy as one JSON line (microseconds).
import { spawn } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';

const [direct, proxy, nEvents, intervalMs] = process.argv.slice(2);
const N = Number(nEvents);
const channel = `bench.proxy${process.pid}`;
const path = `/events?channel=${channel}`;
const arrivals = { direct: new Map(), proxy: new Map() };

// Calls onReady at `event: ready`, then records the arrival of each event
// by its data (the sequence number).
function track(name, stream, onReady) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    const now = process.hrtime.bigint();
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (/^event: ready$/m.test(block)) onReady();
      const m = /^data: seq (\d+)$/m.exec(block);
      if (m) arrivals[name].set(Number(m[1]), now);
    }
  });
}

const ready = [];
ready.push(new Promise((resolve, reject) => {
  http.get(`${direct}${path}`, (res) => track('direct', res, resolve)).on('error', reject);
}));
const session = http2.connect(proxy, { rejectUnauthorized: false });
ready.push(new Promise((resolve, reject) => {
  const req = session.request({ ':path': path, accept: 'text/event-stream' });
  req.on('error', reject);
  track('proxy', req, resolve);
}));
const timeout = setTimeout(() => {
  console.error('proxy-latency: timed out');
  process.exit(1);
}, 120_000);
await Promise.all(ready);

const psql = spawn('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'ignore', 'inherit'] });
for (let i = 0; i < N; i++) {
  psql.stdin.write(`SELECT sse_publish('${channel}', 'seq ${i}');\n`);
  await new Promise((r) => setTimeout(r, Number(intervalMs)));
}
psql.stdin.end();
while (arrivals.direct.size < N || arrivals.proxy.size < N) await new Promise((r) => setTimeout(r, 20));
clearTimeout(timeout);

const added = [];
for (let i = 0; i < N; i++) added.push(Number(arrivals.proxy.get(i) - arrivals.direct.get(i)) / 1000);
added.sort((a, b) => a - b);
const q = (p) => Math.round(added[Math.min(added.length - 1, Math.floor(p * added.length))]);
console.log(JSON.stringify({ events: N, p50_us: q(0.5), p90_us: q(0.9), p99_us: q(0.99), max_us: Math.round(added[added.length - 1]) }));
session.close();
process.exit(0);
