// Shared helpers for the abuse tests: raw HTTP exchanges, an SSE reader,
// a persistent psql session, bridge processes, /proc readings and the
// pass/fail reporter. Node 20, no dependencies.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { SseParser } from '../lib/sse.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Bounded polling: calls fn until it returns a truthy value or the deadline
// passes (then returns null). Only ever used to wait for an observable state.
export async function until(fn, { timeout = 5000, interval = 25 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= deadline) return null;
    await sleep(interval);
  }
}

// ------------------------------------------------------------ reporting

export const tally = { passed: 0, failed: 0 };
// prepended to every check name (to tell a second pass from the first)
export const label = { prefix: '' };

export function check(name, ok, detail = '') {
  name = label.prefix + name;
  if (ok) {
    tally.passed++;
    console.log(`ok - ${name}${detail ? ` (${detail})` : ''}`);
  } else {
    tally.failed++;
    console.log(`FAIL - ${name}${detail ? `: ${detail}` : ''}`);
  }
  return ok;
}

export function note(msg) {
  console.log(`# ${msg}`);
}

export const show = (b, n = 300) => JSON.stringify(Buffer.from(b).toString('latin1').slice(0, n));

// ------------------------------------------------------------ raw HTTP

// One connection: write `parts` (Buffers/strings; numbers are pauses in ms
// between writes), collect everything until the peer closes or `timeout`.
// Resolves {buf, end: 'eof'|'reset'|'timeout'|'error', ms, code}.
export function exchange(port, parts, { timeout = 4000, host = '127.0.0.1' } = {}) {
  if (!Array.isArray(parts)) parts = [parts];
  return new Promise((resolve) => {
    const t0 = Date.now();
    const chunks = [];
    let done = false;
    const s = net.connect(port, host);
    const finish = (end, code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ buf: Buffer.concat(chunks), end, code, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => finish('timeout'), timeout);
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => finish('eof'));
    s.on('error', (e) => finish(e.code === 'ECONNRESET' ? 'reset' : 'error', e.code));
    s.on('close', () => finish('eof'));
    s.on('connect', async () => {
      for (const p of parts) {
        if (done) return;
        if (typeof p === 'number') await sleep(p);
        else if (!s.destroyed) s.write(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
      }
    });
  });
}

// Parse one HTTP/1.1 response from the start of buf. Returns null when the
// head is incomplete; body is Content-Length bytes, rest whatever follows.
export function parseResponse(buf) {
  const i = buf.indexOf('\r\n\r\n');
  if (i < 0) return null;
  const head = buf.subarray(0, i).toString('latin1');
  const lines = head.split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) ([^\r\n]*)$/.exec(lines[0]);
  if (!m) return null;
  const headers = lines.slice(1).map((l) => {
    const c = l.indexOf(':');
    return [l.slice(0, c).toLowerCase(), l.slice(c + 1).trim()];
  });
  const get = (k) => {
    const h = headers.find(([n]) => n === k);
    return h ? h[1] : undefined;
  };
  const cl = get('content-length');
  const start = i + 4;
  const blen = cl === undefined ? buf.length - start : Number(cl);
  return {
    status: Number(m[1]),
    reason: m[2],
    headers,
    get,
    head: buf.subarray(0, start),
    body: buf.subarray(start, start + blen),
    rest: buf.subarray(Math.min(buf.length, start + blen)),
    complete: buf.length >= start + blen,
  };
}

// A rejected request: status in `statuses`, JSON body {error, detail}
// (strings), Content-Length exact, nothing after the body (no second
// response, no stream), and the connection closed by the bridge.
// Returns null when all holds, else a description of what did not.
export function errorProblem(ex, statuses) {
  const r = parseResponse(ex.buf);
  if (!r) return `no response head (end=${ex.end}, got ${show(ex.buf)})`;
  if (!statuses.includes(r.status)) return `status ${r.status}, want ${statuses.join('/')}: ${show(ex.buf)}`;
  if (r.get('content-type') !== 'application/json') return `content-type ${r.get('content-type')}`;
  if (r.get('content-length') === undefined) return 'no Content-Length';
  if (!r.complete) return `body shorter than Content-Length (end=${ex.end})`;
  let j;
  try {
    j = JSON.parse(r.body.toString('utf8'));
  } catch {
    return `body is not JSON: ${show(r.body)}`;
  }
  if (typeof j !== 'object' || j === null || typeof j.error !== 'string' || typeof j.detail !== 'string')
    return `body lacks error/detail: ${show(r.body)}`;
  if (r.rest.length) return `bytes after the response: ${show(r.rest)}`;
  if (ex.end === 'timeout') return 'connection left open after the error response';
  return null;
}

export async function httpGet(port, p, { timeout = 3000 } = {}) {
  const ex = await exchange(port, `GET ${p} HTTP/1.1\r\nHost: t\r\n\r\n`, { timeout });
  return { ex, res: parseResponse(ex.buf) };
}

export async function metrics(port) {
  const { res } = await httpGet(port, '/metrics');
  if (!res || res.status !== 200) return null;
  const m = {};
  for (const line of res.body.toString('utf8').split('\n')) {
    const mm = /^([a-z_]+) (\S+)$/.exec(line);
    if (mm) m[mm[1]] = Number(mm[2]);
  }
  return m;
}

// ------------------------------------------------------------ SSE reader

// A streaming client: parses the response head, then feeds a text/event-stream
// body to the shared parser (test/lib/sse.mjs).  events: {id, event, data}
// as an EventSource would deliver them; comments: how many comment lines.
// Tests that inspect the wire format on purpose read raw bytes instead
// (exchange(), net.connect).
export class Sse {
  constructor(port, target, { headers = {}, host = '127.0.0.1' } = {}) {
    this.events = [];
    this.comments = 0;
    this.bytes = 0;
    this.closed = false;
    this.res = null;
    this._buf = Buffer.alloc(0);
    this._stream = false;
    this._dec = new StringDecoder('utf8');
    this._parser = new SseParser({
      onEvent: (e) => this.events.push(e),
      onComment: () => {
        this.comments++;
      },
    });
    this._waiters = [];
    this.sock = net.connect(port, host);
    this.sock.setNoDelay(true);
    let req = `GET ${target} HTTP/1.1\r\nHost: t\r\n`;
    for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
    this.sock.on('connect', () => this.sock.write(req + '\r\n'));
    this.sock.on('data', (d) => this._data(d));
    this.sock.on('error', () => {});
    this.sock.on('close', () => {
      this.closed = true;
      this._wake();
    });
  }

  _data(d) {
    this.bytes += d.length;
    if (!this.res) {
      this._buf = Buffer.concat([this._buf, d]);
      const r = parseResponse(this._buf);
      if (!r) return;
      this.res = r;
      this._stream = !!r.get('content-type')?.startsWith('text/event-stream');
      d = this._buf.subarray(r.head.length);
      this._buf = null;
    }
    if (this._stream) this._parser.feed(this._dec.write(d));
    this._wake();
  }

  _wake() {
    const w = this._waiters;
    this._waiters = [];
    for (const f of w) f();
  }

  // Wait until pred(this) is true, the connection closes, or the timeout.
  async wait(pred, timeout = 5000) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const v = pred(this);
      if (v) return v;
      if (this.closed || Date.now() >= deadline) return null;
      await new Promise((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this._waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  ready(timeout = 20000) {	// a deadline, not a speed check (ASan on a loaded machine)
    return this.wait((s) => s.events.find((e) => e.event === 'ready'), timeout);
  }

  close() {
    this.sock.destroy();
  }
}

// ------------------------------------------------------------ psql

// One psql session kept open; q() runs SQL and returns its output lines
// (stderr merged, in order). Errors do not end the session.
export class Psql {
  constructor(db) {
    this.p = spawn('sh', ['-c', 'exec psql -X -q -A -t -v ON_ERROR_STOP=0 -d "$1" 2>&1', 'psql', db], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.out = '';
    this.n = 0;
    this.waiters = [];
    this.p.stdout.on('data', (d) => {
      this.out += d.toString('utf8');
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    });
    this.exited = new Promise((r) => this.p.on('exit', r));
  }

  async q(sql, timeout = 30000) {
    const tag = `__abuse_done_${++this.n}__`;
    // a statement without its semicolon would stay in psql's buffer
    if (!/;\s*$/.test(sql)) sql += ';';
    this.p.stdin.write(`${sql}\n\\echo ${tag}\n`);
    const deadline = Date.now() + timeout;
    for (;;) {
      const i = this.out.indexOf(tag + '\n');
      if (i >= 0) {
        const text = this.out.slice(0, i);
        this.out = this.out.slice(i + tag.length + 1);
        return text.split('\n').filter((l) => l !== '');
      }
      if (Date.now() >= deadline) throw new Error(`psql timed out on: ${sql.slice(0, 200)}`);
      await new Promise((r) => {
        const t = setTimeout(r, 200);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  async one(sql) {
    const lines = await this.q(sql);
    return lines[0];
  }

  // Write without waiting (for a statement that runs until stopped).
  send(sql) {
    if (!/;\s*$/.test(sql)) sql += ';';
    this.p.stdin.write(`${sql}\n`);
  }

  async close() {
    this.p.stdin.end('\\q\n');
    await Promise.race([this.exited, sleep(5000)]);
    if (this.p.exitCode === null) this.p.kill('SIGKILL');
  }
}

export function psqlSync(db, sql) {
  const r = spawnSync('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', db, '-c', sql], {
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return r.stdout.trim();
}

// ------------------------------------------------------------ bridges

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

function startTime(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return st.slice(st.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return null;
  }
}

export class Bridge {
  // opts: {bin, db, conninfo (extra keywords), args, tmp, pidfile, env}
  constructor(name, opts) {
    this.name = name;
    this.o = opts;
    this.log = path.join(opts.tmp, `bridge-${name}.log`);
    this.proc = null;
    this.exit = null;
  }

  async start() {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      const fd = fs.openSync(this.log, 'a');
      this.proc = spawn(
        this.o.bin,
        ['--db', `dbname=${this.o.db}${this.o.conninfo ? ` ${this.o.conninfo}` : ''}`, '--listen', `127.0.0.1:${this.port}`, ...this.o.args],
        { stdio: ['ignore', fd, fd], env: { ...process.env, ...(this.o.env || {}) } },
      );
      fs.closeSync(fd);
      this.pid = this.proc.pid;
      this.exit = new Promise((r) => this.proc.on('exit', (code, sig) => r({ code, sig })));
      const st = startTime(this.pid);
      if (st) fs.appendFileSync(this.o.pidfile, `${this.pid} ${st}\n`);
      const ok = await until(
        async () => {
          if (this.proc.exitCode !== null || this.proc.signalCode !== null) return 'exited';
          const { res } = await httpGet(this.port, '/healthz', { timeout: 1000 });
          return res && res.status === 200 ? 'up' : null;
        },
        { timeout: 15000, interval: 50 },
      );
      if (ok === 'up') return true;
      await this.stop();
      if (!/cannot listen/.test(this.logText())) return false;
    }
    return false;
  }

  alive() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  fds() {
    return fs.readdirSync(`/proc/${this.pid}/fd`).length;
  }

  rssKiB() {
    const s = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(s)[1]);
  }

  logText() {
    try {
      return fs.readFileSync(this.log, 'utf8');
    } catch {
      return '';
    }
  }

  // SIGTERM, bounded wait, SIGKILL. Returns {code, sig}.
  async stop(timeout = 8000) {
    if (!this.proc) return null;
    if (this.alive()) this.proc.kill('SIGTERM');
    const r = await Promise.race([this.exit, sleep(timeout).then(() => null)]);
    if (r) return r;
    this.proc.kill('SIGKILL');
    const k = await this.exit;
    return { ...k, killed: true };
  }
}

// Sanitizer findings in a log, or null.
export function sanitizerReport(text) {
  const m = /ERROR: (Address|Leak)Sanitizer|runtime error:|UndefinedBehaviorSanitizer|AddressSanitizer:DEADLYSIGNAL/.exec(text);
  if (!m) return null;
  return text.slice(Math.max(0, m.index - 200), m.index + 1500);
}
