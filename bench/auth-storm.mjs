// Reconnect storm with and without tokens: N clients (default 10,000) each
// open a stream, wait for `ready`, and close; then all of them open again
// (the reconnect storm).  Three bridges, one after another, on the same
// database: no token (a public channel), RS256 tokens (one per client,
// each verified on its first open and found in the cache on the reconnect),
// and RS256 with every token seen for the first time in the storm.
// Prints opens per second of each round, the bridge's CPU time per open
// and one JSON line.  Node 20, no packages.
//
//   node bench/auth-storm.mjs BRIDGE_BIN DBNAME [N] [PARALLEL]
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const [bin, db, nArg, parArg] = process.argv.slice(2);
const N = Number(nArg || 10000);
const PAR = Number(parArg || 200);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sse_storm.'));
const b64u = (b) => Buffer.from(b).toString('base64url');

const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
fs.writeFileSync(path.join(tmp, 'pub.pem'), rsa.publicKey.export({ type: 'spki', format: 'pem' }));

function rs256(sub) {
  const input = `${b64u(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${b64u(JSON.stringify({
    sub, exp: Math.floor(Date.now() / 1000) + 3600, sse: { channels: [`storm.${sub}`] },
  }))}`;
  return `${input}.${b64u(crypto.sign('sha256', Buffer.from(input), rsa.privateKey))}`;
}

const freePort = () => new Promise((resolve) => {
  const s = net.createServer();
  s.listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});

async function startBridge(args) {
  const port = await freePort();
  const log = fs.openSync(path.join(tmp, `bridge-${port}.log`), 'a');
  const proc = spawn(bin, ['--db', `dbname=${db}`, '--listen', `127.0.0.1:${port}`, '--max-clients', String(PAR * 4),
    '--log-level', 'warn', ...args], { stdio: ['ignore', log, log] });
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => resolve(false));
      s.on('connect', () => s.end('GET /healthz HTTP/1.1\r\nHost: b\r\n\r\n'));
      s.on('data', (d) => resolve(d.toString().startsWith('HTTP/1.1 200')));
    });
    if (ok) return { proc, port };
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('bridge did not start');
}

function cpuTicks(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks
}

// One open: connect, GET, wait for `event: ready`, close.  Resolves the status.
function openOnce(port, target, headers) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(r);
    };
    s.setNoDelay(true);
    s.on('connect', () => s.write(`GET ${target} HTTP/1.1\r\nHost: b\r\n${headers}\r\n`));
    s.on('data', (d) => {
      buf += d.toString('latin1');
      if (!buf.startsWith('HTTP/1.1 200')) {
        if (buf.includes('\r\n')) finish(buf.slice(9, 12));
      } else if (buf.includes('event: ready')) finish('200');
    });
    s.on('error', () => finish('error'));
    s.on('close', () => finish('closed'));
  });
}

async function round(port, reqs) {
  const statuses = {};
  let next = 0;
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: PAR }, async () => {
    while (next < reqs.length) {
      const r = reqs[next++];
      const st = await openOnce(port, r.target, r.headers);
      statuses[st] = (statuses[st] || 0) + 1;
    }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { secs, rate: reqs.length / secs, statuses };
}

async function scenario(name, args, reqsFor) {
  const { proc, port } = await startBridge(args);
  const hz = 100;
  const out = { name };
  for (const phase of ['storm', 'reconnect']) {
    const reqs = reqsFor(phase);
    const c0 = cpuTicks(proc.pid);
    const r = await round(port, reqs);
    const cpu = (cpuTicks(proc.pid) - c0) / hz;
    out[phase] = { opens_per_s: Math.round(r.rate), secs: +r.secs.toFixed(2), cpu_us_per_open: Math.round(cpu * 1e6 / reqs.length), statuses: r.statuses };
    console.log(`${name.padEnd(28)} ${phase.padEnd(10)} ${String(out[phase].opens_per_s).padStart(6)} opens/s  ` +
      `${String(out[phase].cpu_us_per_open).padStart(5)} us bridge CPU/open  ${JSON.stringify(r.statuses)}`);
  }
  proc.kill('SIGTERM');
  await new Promise((r) => proc.on('exit', r));
  return out;
}

console.log(`# ${N} clients, ${PAR} in flight; signing ${N * 2} RS256 tokens first`);
const toks = Array.from({ length: N }, (_, i) => rs256(`u${i}`));
const fresh = Array.from({ length: N }, (_, i) => rs256(`v${i}`));
const key = ['--jwt-key', path.join(tmp, 'pub.pem'), '--jwt-alg', 'RS256'];
const results = [];
results.push(await scenario('no token (public channel)', ['--public-channels', 'storm.#'],
  () => Array.from({ length: N }, (_, i) => ({ target: `/events?channel=storm.u${i}`, headers: '' }))));
results.push(await scenario('RS256, cache', key,
  () => toks.map((t, i) => ({ target: `/events?channel=storm.u${i}`, headers: `Authorization: Bearer ${t}\r\n` }))));
results.push(await scenario('RS256, no cache hit', key,
  (phase) => (phase === 'storm' ? toks : fresh).map((t, i) => ({
    target: `/events?channel=storm.${phase === 'storm' ? 'u' : 'v'}${i}`, headers: `Authorization: Bearer ${t}\r\n`,
  }))));
console.log(JSON.stringify({ clients: N, parallel: PAR, cpus: os.cpus().length, results }));
fs.rmSync(tmp, { recursive: true, force: true });
