// test/topology/clients.mjs - reconnecting SSE clients that move between
// bridges at random, each resuming with the Last-Event-ID it last got.
//
//   node clients.mjs OUT.json BRIDGES_FILE STREAM...
//
// BRIDGES_FILE holds one base URL per line, read again at every move (the
// test drops a bridge whose server it stopped).  Each STREAM is a path
// ("/events?channel=..." or "/events/<uuid>") read by one client.  A
// client holds a connection for a random 100..2100 ms, then moves to a
// random bridge; a refused connection or a 503 moves on after a short
// pause.  It stops after the event whose data is "end", or at SIGTERM.
// OUT.json gets, per client: its stream, the ids and data of the message
// events in arrival order, every other event (reset, ...) and the statuses
// it was answered with.  The comparison with the log is run.sh's.
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { SseParser } from '../lib/sse.mjs';

const [out, bridgesFile, ...paths] = process.argv.slice(2);
const pick = (a) => a[Math.floor(Math.random() * a.length)];
const pause = (ms) => new Promise((r) => setTimeout(r, ms));
let stopping = false;

function bridges() {
  return readFileSync(bridgesFile, 'utf8').split('\n').filter((l) => l.trim() !== '');
}

// One connection: resolves when it ends (aborted after hold ms, or closed).
function connect(c, base, hold) {
  return new Promise((resolve) => {
    const last = c.parser.lastEventId;
    const headers = last !== '' ? { 'Last-Event-ID': last } : {};
    const req = http.get(base + c.path, { headers }, (res) => {
      c.statuses[res.statusCode] = (c.statuses[res.statusCode] || 0) + 1;
      if (res.statusCode !== 200) {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
        return;
      }
      c.opens.push(base);
      const dec = new StringDecoder('utf8');
      c.parser.begin();
      res.on('data', (b) => c.parser.feed(dec.write(b)));
      res.on('end', () => resolve(200));
      res.on('error', () => resolve(200));
    });
    req.on('error', () => resolve(0));
    const t = setTimeout(() => req.destroy(), hold);
    req.on('close', () => { clearTimeout(t); resolve(0); });
    c.abort = () => req.destroy();
  });
}

async function run(path) {
  const c = { path, start: null, got: [], other: [], statuses: {}, opens: [], done: false };
  c.parser = new SseParser({
    onEvent: (e) => {
      if (e.event === 'message' || e.event === '') {
        c.got.push([e.id, e.data]);
        if (e.data === 'end') {
          c.done = true;
          c.abort();
        }
      } else if (e.event !== 'ready') {
        c.other.push(e);
      } else if (c.start === null) {
        c.start = e.id;
      }
    },
  });
  while (!c.done && !stopping) {
    const status = await connect(c, pick(bridges()), 100 + Math.random() * 2000);
    if (status !== 200) await pause(50 + Math.random() * 100);
  }
  return c;
}

process.on('SIGTERM', () => { stopping = true; });
const all = await Promise.all(paths.map(run));
writeFileSync(out, JSON.stringify(all.map(({ path, start, got, other, statuses, opens, done }) => ({
  path, start, got, other, statuses, opens: opens.length, done }))));
