// Slowloris: request heads sent one byte every 500 ms, and connections that
// send nothing, are cut at --header-timeout (408 or a close), while a normal
// client keeps streaming; 500 of them at once do not delay it.
import net from 'node:net';
import { Sse, check, metrics, note, parseResponse, until } from './lib.mjs';

const HEAD = 'GET /events?channel=pub.slow HTTP/1.1\r\nHost: t\r\n\r\n';

// One slow client. Resolves {ms (connect to first response byte or close),
// status (408 or null), end}.
function slowClient(port, { silent = false, every = 500 } = {}) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let t0 = 0;
    let first = null;
    let buf = Buffer.alloc(0);
    let i = 0;
    let timer = null;
    let done = false;
    const finish = (end) => {
      if (done) return;
      done = true;
      clearInterval(timer);
      clearTimeout(guard);
      s.destroy();
      const r = parseResponse(buf);
      resolve({ ms: (first ?? Date.now()) - t0, status: r ? r.status : null, body: r?.body.toString(), end });
    };
    const guard = setTimeout(() => finish('timeout'), 30000);
    s.on('connect', () => {
      t0 = Date.now();
      if (!silent) {
        timer = setInterval(() => {
          if (i < HEAD.length && !s.destroyed) s.write(HEAD[i++]);
        }, every);
      }
    });
    s.on('data', (d) => {
      if (first === null) first = Date.now();
      buf = Buffer.concat([buf, d]);
    });
    s.on('error', () => finish('error'));
    s.on('end', () => finish('eof'));
    s.on('close', () => finish('close'));
  });
}

// A publish and the time until the stream has it.
async function latency(psql, s, tag) {
  const t0 = Date.now();
  await psql.q(`SELECT sse_publish('pub.slow', '${tag}')`);
  const e = await s.wait((x) => x.events.find((ev) => ev.data === tag), 5000);
  return e ? Date.now() - t0 : Infinity;
}

export async function slowlorisChecks(b, psql, timeoutS) {
  const p = b.port;
  const lo = timeoutS * 1000 - 100;
  // the sweep runs every 250 ms; 1 s more for scheduling on a loaded 2-core box
  const hi = timeoutS * 1000 + 250 + 1000;
  const okCut = (r) => (r.status === 408 || r.status === null) && r.end !== 'timeout' && r.ms >= lo && r.ms <= hi;
  const desc = (r) => `${r.status ?? 'close'} after ${r.ms} ms`;

  // ---- one of each, with a normal stream alongside
  const normal = new Sse(p, '/events?channel=pub.slow');
  check('slowloris: normal stream opens', !!(await normal.ready()));
  const pa = slowClient(p);
  const pb = slowClient(p, { silent: true });
  const lat1 = await latency(psql, normal, 'during-one');
  const [a, bb] = await Promise.all([pa, pb]);
  check(`slowloris: byte-every-500ms head cut within [${lo}, ${hi}] ms (408 or close)`, okCut(a), desc(a));
  check(`slowloris: silent connection cut within [${lo}, ${hi}] ms (408 or close)`, okCut(bb), desc(bb));
  if (a.status === 408 || bb.status === 408) {
    const body = a.status === 408 ? a.body : bb.body;
    let j = null;
    try {
      j = JSON.parse(body);
    } catch {
      /* reported below */
    }
    check('slowloris: the 408 has a JSON body', j && typeof j.error === 'string', JSON.stringify(body));
  }
  check('slowloris: normal stream gets an event promptly meanwhile (< 1000 ms)', lat1 < 1000, `${lat1} ms`);

  // ---- 500 at once
  const N = 500;
  const slow = [];
  for (let i = 0; i < N; i++) slow.push(slowClient(p, { silent: i % 5 === 0 }));
  // all connected, or the bridge is not keeping up
  await until(async () => ((await metrics(p))?.sse_bridge_clients ?? 0) >= N, { timeout: 5000, interval: 50 });
  const t0 = Date.now();
  const late = new Sse(p, '/events?channel=pub.slow');
  const ready = await late.ready(3000);
  const readyMs = Date.now() - t0;
  const lats = [];
  for (let i = 0; i < 5; i++) lats.push(await latency(psql, late, `during-many-${i}`));
  const lat2 = await latency(psql, normal, 'during-many-old');
  const res = await Promise.all(slow);
  const cut = res.filter(okCut).length;
  const max = Math.max(...res.map((r) => r.ms));
  const n408 = res.filter((r) => r.status === 408).length;
  note(`slowloris: ${N} slow clients: ${n408} got 408, ${N - n408} a bare close; slowest cut after ${max} ms`);
  check(`slowloris: a new stream opens promptly among ${N} slow clients (< 1000 ms)`, !!ready && readyMs < 1000, `${readyMs} ms`);
  check(
    `slowloris: it gets each of 5 events promptly among ${N} slow clients (< 1000 ms)`,
    lats.every((x) => x < 1000),
    `${lats.join(', ')} ms`,
  );
  check('slowloris: the older stream still gets events promptly', lat2 < 1000, `${lat2} ms`);
  check(`slowloris: all ${N} slow clients cut within [${lo}, ${hi}] ms`, cut === N, `${cut} of ${N}; slowest ${max} ms`);
  late.close();
  normal.close();
  const m = await until(async () => {
    const x = await metrics(p);
    return x && x.sse_bridge_clients <= 1 && x.sse_bridge_streams === 0 ? x : null;
  }, { timeout: 8000, interval: 100 });
  check('slowloris: the bridge holds no connection afterwards', !!m, '');
}
