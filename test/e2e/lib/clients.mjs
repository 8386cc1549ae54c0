// The real clients the tests drive, behind one recording interface:
//   curlStream(url)  - curl -N, its output read by test/lib/sse.mjs
//   esStream(url)    - the npm `eventsource` package, in this process
//   cStream(url)     - build/sseclient (test/e2e/sseclient.c), JSON lines
// plus plain request helpers (node:http and raw TCP) for non-stream answers.
//
// Every recorder keeps: events [{id, event, data, t}], comments, retries,
// responses [{status, headers}], connects, ended; waitFor() resolves when a
// predicate over the recorder holds, re-checked on every change.
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { EventSource } from 'eventsource';
import { ENV, recordPid } from './env.mjs';
import { SseParser } from '../../lib/sse.mjs';

export const RESERVED = new Set(['ready', 'reset']);

export class Recorder {
  constructor(kind, url) {
    this.kind = kind;
    this.url = url;
    this.events = [];
    this.comments = [];
    this.retries = [];
    this.responses = [];
    this.connects = 0;
    this.ended = false;
    this.exit = null;
    this.log = [];
    this.waiters = new Set();
  }

  get status() {
    return this.responses.length ? this.responses[this.responses.length - 1].status : null;
  }

  get headers() {
    return this.responses.length ? this.responses[this.responses.length - 1].headers : {};
  }

  changed() {
    for (const w of [...this.waiters]) {
      let ok = false;
      try {
        ok = w.pred(this);
      } catch (err) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.reject(err);
        continue;
      }
      if (ok) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(this);
      }
    }
  }

  // Resolve when pred(recorder) is true; reject after timeoutMs.
  waitFor(pred, what = 'condition', timeoutMs = 20_000) {
    if (pred(this)) return Promise.resolve(this);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.kind} ${this.url}: timed out waiting for ${what}\n${this.describe()}`));
      }, timeoutMs);
      this.waiters.add(w);
    });
  }

  waitEvent(pred, what, timeoutMs) {
    return this.waitFor((r) => r.events.some(pred), what, timeoutMs).then(() => this.events.find(pred));
  }

  waitReady(timeoutMs) {
    return this.waitEvent((e) => e.event === 'ready', 'event: ready', timeoutMs);
  }

  waitEnded(timeoutMs) {
    return this.waitFor((r) => r.ended, 'the stream to end', timeoutMs);
  }

  // Events that carry log rows (everything except ready and reset).
  rows() {
    return this.events.filter((e) => !RESERVED.has(e.event));
  }

  // e.id is the wire id, a position "<id>-<fingerprint>": the recorder keeps
  // it as pos and its numeric part as id (compared with log rows).
  addEvent(e) {
    const m = /^([0-9]+)-(0|[0-9a-f]{8})$/.exec(e.id ?? '');
    this.events.push({ ...e, pos: e.id, id: m ? m[1] : e.id, t: Date.now() });
    this.changed();
  }

  describe() {
    const last = this.events.slice(-5).map((e) => `${e.id}/${e.event}/${JSON.stringify(e.data).slice(0, 80)}`);
    return `  status=${this.status} connects=${this.connects} events=${this.events.length} ` +
      `comments=${this.comments.length} ended=${this.ended}\n  last events: ${last.join(' | ')}` +
      (this.log.length ? `\n  log: ${this.log.slice(-5).join(' | ').slice(0, 600)}` : '');
  }
}

function waitExit(proc) {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('close', resolve));
}

async function killProc(proc) {
  if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
  await waitExit(proc);
}

// ------------------------------------------------------------------ curl

export function curlStream(url, { headers = {}, args = [] } = {}) {
  const rec = new Recorder('curl', url);
  const argv = ['-sS', '-N', '-i', ...args];
  for (const [k, v] of Object.entries(headers)) argv.push('-H', `${k}: ${v}`);
  argv.push(url);
  const proc = spawn('curl', argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  recordPid(proc.pid);
  const dec = new StringDecoder('utf8');
  let head = '';
  let inBody = false;
  rec.raw = '';
  rec.connects = 1;
  const parser = new SseParser({
    onEvent: (e) => rec.addEvent(e),
    onComment: (text) => {
      rec.comments.push({ text, t: Date.now() });
      rec.changed();
    },
    onRetry: (ms) => {
      rec.retries.push(ms);
      rec.changed();
    },
  });
  const body = (text) => {
    rec.raw += text;
    parser.feed(text);
    rec.changed();
  };
  proc.stdout.on('data', (chunk) => {
    const text = dec.write(chunk);
    if (inBody) return body(text);
    head += text;
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return undefined;
    const lines = head.slice(0, end).split('\r\n');
    const status = Number(lines[0].split(' ')[1]);
    const hdrs = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) hdrs[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    rec.responses.push({ status, headers: hdrs });
    inBody = true;
    const rest = head.slice(end + 4);
    head = '';
    return body(rest);
  });
  proc.stderr.on('data', (b) => rec.log.push(b.toString().trim()));
  proc.on('close', (code, signal) => {
    rec.ended = true;
    rec.exit = { code, signal };
    rec.changed();
  });
  rec.proc = proc;
  rec.close = () => killProc(proc);
  return rec;
}

// ------------------------------------------------------------- eventsource

// lastEventId: sent as Last-Event-ID until the client has an id of its own
// (a browser cannot do this; it stands for "a page that reconnects").
export function esStream(url, { lastEventId = null, headers = {} } = {}) {
  const rec = new Recorder('eventsource', url);
  rec.errors = [];
  rec.opens = 0;
  const fetchWrapper = async (input, init) => {
    const h = { ...(init.headers || {}), ...headers };
    if (lastEventId !== null && !('Last-Event-ID' in h)) h['Last-Event-ID'] = String(lastEventId);
    rec.connects++;
    rec.log.push(`connect Last-Event-ID=${h['Last-Event-ID'] ?? ''}`);
    const res = await fetch(input, { ...init, headers: h });
    rec.responses.push({ status: res.status, headers: Object.fromEntries(res.headers.entries()) });
    rec.changed();
    return res;
  };
  const es = new EventSource(url, { fetch: fetchWrapper });
  const dispatch = EventTarget.prototype.dispatchEvent;
  es.dispatchEvent = function record(ev) {
    if (ev.type === 'error') {
      rec.errors.push({ code: ev.code, message: ev.message, readyState: es.readyState });
      rec.log.push(`error ${ev.code ?? ''} ${ev.message ?? ''}`);
      if (es.readyState === es.CLOSED) rec.ended = true;
      rec.changed();
    } else if (ev.type === 'open') {
      rec.opens++;
      rec.changed();
    } else if (ev instanceof MessageEvent) {
      rec.addEvent({ id: ev.lastEventId, event: ev.type, data: ev.data });
    }
    return dispatch.call(this, ev);
  };
  rec.es = es;
  rec.close = async () => {
    es.close();
  };
  return rec;
}

// ------------------------------------------------------------------ C client

export function cStream(url, {
  lastEventId = null, headers = {}, reconnect = 0, maxDelayMs = null, untilEvent = null,
  maxEvents = 0, pauseAfter = 0, rcvbuf = 0, timeoutS = 300,
} = {}) {
  const rec = new Recorder('sseclient', url);
  const argv = ['--timeout', String(timeoutS), '--reconnect', String(reconnect)];
  if (lastEventId !== null) argv.push('--last-event-id', String(lastEventId));
  for (const [k, v] of Object.entries(headers)) argv.push('--header', `${k}: ${v}`);
  if (maxDelayMs !== null) argv.push('--max-delay-ms', String(maxDelayMs));
  if (untilEvent) argv.push('--until-event', untilEvent);
  if (maxEvents) argv.push('--max-events', String(maxEvents));
  if (pauseAfter) argv.push('--pause-after', String(pauseAfter));
  if (rcvbuf) argv.push('--rcvbuf', String(rcvbuf));
  argv.push(url);
  const proc = spawn(ENV.sseclient, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  recordPid(proc.pid);
  rec.lines = [];
  rec.eofs = 0;
  rec.paused = false;
  rec.resumed = false;
  let pending = '';
  const dec = new StringDecoder('utf8');
  proc.stdout.on('data', (chunk) => {
    pending += dec.write(chunk);
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (!line) continue;
      const m = JSON.parse(line);
      rec.lines.push(m);
      switch (m.kind) {
        case 'connect': rec.connects++; rec.log.push(`connect Last-Event-ID=${m.last_event_id}`); break;
        case 'response': rec.responses.push({ status: m.status, headers: m.headers }); break;
        case 'retry': rec.retries.push(m.ms); break;
        case 'comment': rec.comments.push({ text: m.text, t: Date.now() }); break;
        case 'event': rec.addEvent({ id: m.id, event: m.event, data: m.data }); continue;
        case 'body': rec.body = m.text; break;
        case 'eof': rec.eofs++; rec.log.push('eof'); break;
        case 'paused': rec.paused = true; break;
        case 'resumed': rec.resumed = true; break;
        case 'exit': rec.exitReason = m.reason; break;
        default: break;
      }
      rec.changed();
    }
  });
  proc.stderr.on('data', (b) => rec.log.push(b.toString().trim()));
  proc.on('close', (code, signal) => {
    rec.ended = true;
    rec.exit = { code, signal };
    rec.changed();
  });
  rec.proc = proc;
  rec.signal = (sig) => proc.kill(sig);
  rec.close = () => killProc(proc);
  return rec;
}

// ------------------------------------------------------------ plain requests

// A request with node:http. A text/event-stream answer is cut off after
// its head (body = what arrived first). Resolves {status, headers, body}.
export function request(url, { method = 'GET', headers = {}, timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks = [];
      const done = () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() });
      if ((res.headers['content-type'] || '').startsWith('text/event-stream')) {
        res.once('data', (c) => {
          chunks.push(c);
          req.destroy();
          done();
        });
        return;
      }
      res.on('data', (c) => chunks.push(c));
      res.on('end', done);
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`request ${method} ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function parseHead(text) {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  const headers = {};
  for (const l of lines.slice(1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  return { status: m ? Number(m[1]) : null, statusLine: lines[0], headers };
}

function dechunk(buf) {
  let out = Buffer.alloc(0);
  let i = 0;
  for (;;) {
    const eol = buf.indexOf('\r\n', i);
    if (eol < 0) return { body: out, complete: false };
    const size = parseInt(buf.subarray(i, eol).toString().split(';')[0], 16);
    if (Number.isNaN(size)) return { body: out, complete: false };
    if (size === 0) return { body: out, complete: true };
    if (buf.length < eol + 2 + size + 2) return { body: out, complete: false };
    out = Buffer.concat([out, buf.subarray(eol + 2, eol + 2 + size)]);
    i = eol + 2 + size + 2;
  }
}

// Send raw bytes over TCP and read one response. Write errors are ignored:
// a server may answer and close before it has read everything we send.
export function rawRequest(port, bytes, { timeoutMs = 10_000, host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let data = Buffer.alloc(0);
    let settled = false;
    const finish = (closed) => {
      if (settled) return;
      const text = data.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) {
        if (!closed) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        resolve({ status: null, headers: {}, body: '', raw: text, closed });
        return;
      }
      const head = parseHead(text.slice(0, end));
      const rest = data.subarray(end + 4);
      let body = rest;
      let complete = closed;
      if ((head.headers['transfer-encoding'] || '').toLowerCase().includes('chunked')) {
        const d = dechunk(rest);
        body = d.body;
        complete = complete || d.complete;
      } else if (head.headers['content-length'] !== undefined) {
        const n = Number(head.headers['content-length']);
        complete = complete || rest.length >= n;
        body = rest.subarray(0, n);
      } else if (head.status === 204 || head.status === 304 ||
                 (head.headers['content-type'] || '').startsWith('text/event-stream')) {
        complete = true;
      }
      if (!complete) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...head, body: body.toString('utf8'), raw: text, closed });
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      sock.destroy();
      reject(new Error(`raw request timed out; got ${JSON.stringify(data.toString('latin1').slice(0, 300))}`));
    }, timeoutMs);
    sock.on('connect', () => {
      sock.write(bytes, () => {});
    });
    sock.on('data', (c) => {
      data = Buffer.concat([data, c]);
      finish(false);
    });
    sock.on('error', () => finish(true));
    sock.on('close', () => finish(true));
  });
}
