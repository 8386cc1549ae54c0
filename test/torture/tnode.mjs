// tnode.mjs - reconnecting subscribers on the npm `eventsource` client.
//
// Reads the same subscriber table as tclient.c and runs one EventSource per
// line whose client column is "node".  The EventSource does its own
// reconnecting and resends Last-Event-ID itself; the `fetch` it is given
// only (a) sends each request to a bridge picked at random from --ports, so
// a stream moves between bridges on reconnection, (b) adds the initial
// Last-Event-ID header on requests made before EventSource has an id of its
// own, when the table asks for one (lid_mode "query" puts lastEventId in the URL instead, and it stays
// there on every reconnection, as a browser page would do), and (c) cuts
// the body at a random moment, which EventSource sees as a network error.
//
// Log lines are the same JSON objects tclient.c writes (see there).  When
// EventSource gives up for good (a non-200 answer), a 5xx is retried with a
// new EventSource that carries the last id, as an application would; 204
// and 4xx end the subscriber.
//
// A "lag" subscriber is held off (its EventSource closed) while the file
// DIR/hold.<name> exists, acknowledged by DIR/held.<name>; when the file
// goes, a new EventSource resumes from the last id seen (tclient.c does the
// same).  A "close" event is logged like any other: wildcard streams get
// it as an ordinary event.
//
// Signals: SIGHUP = drain (no more cuts, holds released), SIGTERM/SIGINT = exit.
import { createHash } from 'node:crypto';
import { openSync, readFileSync, writeSync, closeSync, existsSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((a, v, i, all) => (i % 2 === 0 ? [...a, [v.replace(/^--/, ''), all[i + 1]]] : a), []));
const require = createRequire(path.resolve(args.modules || '.', 'x.js'));
const { EventSource } = require('eventsource');

const dir = args.dir || '.';
const ports = (args.ports || '').split(',').filter(Boolean).map(Number);
const seconds = Number(args.seconds || 600);
const cutMeanMs = Number(args['cut-mean-ms'] || 6000);
let seed = Number(args.seed || 1) >>> 0 || 1;
const rand = () => {
  // xorshift32: deterministic choices for a given seed
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed / 4294967296;
};
const NAMES = ['message', 'update', 'job.done', 'cr\u00e9\u00e9', 'close'];

let drain = false;
const subs = [];

function logLine(s, obj) {
  writeSync(s.fd, JSON.stringify(obj) + '\n');
}

function md5(data) {
  return createHash('md5').update(data, 'utf8').digest('hex');
}

function cutBody(s, res) {
  const reader = res.body.getReader();
  const delay = -Math.log(1 - rand()) * cutMeanMs;
  let timer;
  const stream = new ReadableStream({
    start(ctrl) {
      timer = setTimeout(() => {
        s.timers.delete(timer);
        s.cuts++;
        logLine(s, { k: 'x', why: 'cut' });
        try { ctrl.error(new Error('torture cut')); } catch { /* already over */ }
        reader.cancel().catch(() => {});
      }, delay);
      s.timers.add(timer);
    },
    async pull(ctrl) {
      try {
        const { done, value } = await reader.read();
        if (done) { clearTimeout(timer); s.timers.delete(timer); ctrl.close(); } else ctrl.enqueue(value);
      } catch (e) {
        clearTimeout(timer); s.timers.delete(timer);
        try { ctrl.error(e); } catch { /* already errored by the cut */ }
      }
    },
    cancel(reason) {
      clearTimeout(timer); s.timers.delete(timer);
      return reader.cancel(reason);
    },
  });
  return new Response(stream, { status: res.status, headers: res.headers });
}

function makeFetch(s) {
  return async (url, init) => {
    const u = new URL(url);
    u.port = String(ports[Math.floor(rand() * ports.length)]);
    const headers = { ...(init.headers || {}) };
    s.attempts++;
    // a new EventSource (after a 503 or a lag hold) resumes from the last id
    // seen, on every attempt until it has an id of its own (a failed first
    // attempt must not fall back to the start); otherwise the configured
    // starting point holds until EventSource has an id of its own
    if (s.resumeLid && !headers['Last-Event-ID']) headers['Last-Event-ID'] = s.resumeLid;
    if (!headers['Last-Event-ID'] && s.initialLid !== '-' && s.lidMode === 'header') headers['Last-Event-ID'] = s.initialLid;
    logLine(s, { k: 'c', port: Number(u.port), lid: headers['Last-Event-ID'] || '' });
    let res;
    try {
      res = await fetch(u, { ...init, headers });
    } catch (e) {
      logLine(s, { k: 'x', why: 'connect' });
      throw e;
    }
    logLine(s, { k: 's', status: res.status });
    s.lastStatus = res.status;
    if (res.status !== 200) {
      const body = await res.text().catch(() => '');
      logLine(s, { k: 'f', status: res.status, body: body.slice(0, 4096) });
      return new Response(null, { status: res.status, headers: res.headers });
    }
    if (drain || s.steady || !res.body) return res;
    return cutBody(s, res);
  };
}

function open(s) {
  let url = `http://127.0.0.1:${ports[0]}${s.path}`;
  if (s.initialLid !== '-' && s.lidMode === 'query') url += (s.path.includes('?') ? '&' : '?') + 'lastEventId=' + s.initialLid;
  const es = new EventSource(url, { fetch: makeFetch(s) });
  s.es = es;
  for (const name of NAMES) {
    es.addEventListener(name, (ev) => {
      s.lastId = ev.lastEventId || s.lastId;
      s.events++;
      logLine(s, { k: 'e', id: ev.lastEventId, ev: name, len: Buffer.byteLength(ev.data, 'utf8'), md5: md5(ev.data) });
    });
  }
  es.addEventListener('ready', (ev) => {
    if (ev.lastEventId) s.lastId = ev.lastEventId;
    logLine(s, { k: 'y', id: ev.lastEventId, data: ev.data });
  });
  es.addEventListener('reset', (ev) => {
    if (ev.lastEventId) s.lastId = ev.lastEventId;
    logLine(s, { k: 'r', id: ev.lastEventId, data: ev.data });
  });
  es.addEventListener('error', (ev) => {
    if (es.readyState === es.CLOSED) {
      const st = s.lastStatus || 0;
      if (st >= 500 && !stopping) {
        // EventSource gave up; an application would open a new one
        s.resumeLid = s.lastId;
        setTimeout(() => { if (!stopping) open(s); }, 300 + rand() * 700);
      } else {
        s.done = true;
      }
      return;
    }
    logLine(s, { k: 'x', why: 'error:' + (ev.message || '') });
  });
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  let events = 0, connects = 0, cuts = 0;
  for (const s of subs) {
    try { s.es.close(); } catch { /* closing anyway */ }
    for (const t of s.timers) clearTimeout(t);
    events += s.events; connects += s.attempts; cuts += s.cuts;
    closeSync(s.fd);
  }
  process.stdout.write(`tnode subscribers=${subs.length} events=${events} connects=${connects} cuts=${cuts}\n`);
  process.exit(0);
}

for (const line of readFileSync(args.config, 'utf8').split('\n')) {
  if (!line || line.startsWith('#')) continue;
  const f = line.split('\t');
  if (f[1] !== 'node') continue;
  subs.push({
    name: f[0], path: f[2], initialLid: f[3], lidMode: f[4],
    steady: (f[5] || '').includes('steady'),
    lag: (f[5] || '').includes('lag'), held: false,
    fd: openSync(path.join(dir, f[0] + '.log'), 'w'),
    attempts: 0, events: 0, cuts: 0, timers: new Set(), lastId: null, resumeLid: null,
  });
}
// lag holds: poll the hold files (see the header)
setInterval(() => {
  for (const s of subs) {
    if (!s.lag) continue;
    const want = !drain && existsSync(path.join(dir, 'hold.' + s.name));
    const ack = path.join(dir, 'held.' + s.name);
    if (want && !s.held) {
      s.held = true;
      if (!s.done) {
        try { s.es.close(); } catch { /* closing anyway */ }
        logLine(s, { k: 'x', why: 'hold' });
      }
      closeSync(openSync(ack, 'w'));
    } else if (!want && s.held) {
      s.held = false;
      try { unlinkSync(ack); } catch { /* gone already */ }
      if (!s.done && !stopping) {
        s.resumeLid = s.lastId;
        open(s);
      }
    }
  }
}, 50);
process.on('SIGHUP', () => {
  drain = true;
  for (const s of subs) {
    for (const t of s.timers) clearTimeout(t);
    s.timers.clear();
    logLine(s, { k: 'm', why: 'drain' });
  }
});
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
setTimeout(stop, seconds * 1000);
for (const s of subs) open(s);
