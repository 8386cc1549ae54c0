// Descriptor limit and methods: at RLIMIT_NOFILE the bridge answers extra
// connections "503" with Retry-After (not a silent close), logs the accept
// failures at most once a second, and serves again once descriptors are
// free; HEAD (or any method but GET/OPTIONS) gets 405 with an Allow header.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Bridge, check, exchange, httpGet, parseResponse, show, sleep, until } from './lib.mjs';

export async function headChecks(b) {
  for (const [method, target] of [['HEAD', '/healthz'], ['HEAD', '/events?channel=pub.a'], ['POST', '/events']]) {
    const ex = await exchange(b.port, `${method} ${target} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n`);
    const r = parseResponse(ex.buf);
    const ok = r && r.status === 405 && r.get('allow') === 'GET, OPTIONS' &&
      (method !== 'HEAD' || ex.buf.length === r.head.length);
    check(`methods: ${method} ${target} gets 405 with Allow: GET, OPTIONS${method === 'HEAD' ? ' and no body' : ''}`, ok, show(ex.buf));
  }
}

// Hold connections open (idle) until the bridge refuses; returns the sockets.
function connectMany(port, n) {
  const socks = [];
  const results = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect(port, '127.0.0.1');
    const r = { buf: Buffer.alloc(0), closed: false };
    s.on('data', (d) => { r.buf = Buffer.concat([r.buf, d]); });
    s.on('close', () => { r.closed = true; });
    s.on('error', () => {});
    socks.push(s);
    results.push(r);
  }
  return { socks, results };
}

export async function fdLimitChecks(o) {
  const limit = 40;
  const wrapper = path.join(o.tmp, 'bridge-nofile.sh');
  fs.writeFileSync(wrapper, `#!/bin/sh\nulimit -n ${limit} || exit 3\nexec "${o.bin}" "$@"\n`, { mode: 0o755 });
  const b = new Bridge('fdlimit', { bin: wrapper, db: o.db, tmp: o.tmp, pidfile: o.pidfile,
    args: ['--header-timeout', '30', '--max-clients', '1000', '--log-level', 'info'] });
  o.bridges.push(b);
  const up = await b.start();
  check('fdlimit: bridge starts with RLIMIT_NOFILE 40', up, b.logText().slice(-300));
  if (!up) return;
  const t0 = Date.now();
  const { socks, results } = connectMany(b.port, 150);
  // every connection is either held open (accepted) or answered and closed
  await until(() => results.filter((r) => r.closed).length >= 100, { timeout: 8000 });
  const closed = results.filter((r) => r.closed);
  const busy = closed.filter((r) => {
    const p = parseResponse(r.buf);
    let j = null;
    try {
      j = p && JSON.parse(p.body.toString());
    } catch { /* checked below */ }
    return p && p.status === 503 && /^\d+$/.test(p.get('retry-after') || '') && j && j.error === 'unavailable';
  });
  check('fdlimit: connections beyond the descriptor limit get 503 with Retry-After and a JSON body',
    closed.length >= 100 && busy.length === closed.length, `${closed.length} closed, ${busy.length} with 503; first: ${show(closed[0]?.buf || '')}`);
  const held = results.length - closed.length;
  check('fdlimit: the connections that fit are held open', held > 0 && held < limit, `${held} open`);
  // a second wave a little later: still answered, and the log stays short
  await sleep(300);
  const wave2 = connectMany(b.port, 100);
  await until(() => wave2.results.filter((r) => r.closed).length >= 100, { timeout: 8000 });
  const secs = (Date.now() - t0) / 1000;
  const lines = b.logText().split('\n').filter((l) => /accept failed/.test(l));
  check('fdlimit: accept failures are logged, at most once a second',
    lines.length >= 1 && lines.length <= Math.ceil(secs) + 1, `${lines.length} lines in ${secs.toFixed(1)} s: ${lines[0] || ''}`);
  for (const s of [...socks, ...wave2.socks]) s.destroy();
  // descriptors come back: a request is served again
  const ok = await until(async () => {
    const { res } = await httpGet(b.port, '/healthz', { timeout: 1000 });
    return res && res.status === 200;
  }, { timeout: 5000 });
  check('fdlimit: served again once the descriptors are free', ok);
  check('fdlimit: still running', b.alive());
  await b.stop();
}
