// Churn: many short-lived connections of every kind, FIN and RST closes,
// streams cut in the middle of large writes while events are published.
// The bridge's open fds and RSS must come back to where they started.
import net from 'node:net';
import { check, metrics, note, sanitizerReport, sleep, until } from './lib.mjs';

const STREAM_REQ = (target) => `GET ${target} HTTP/1.1\r\nHost: churn\r\n\r\n`;

// The kinds of cycle, taken in turn; each is run once with a FIN close and
// once with an RST close (SO_LINGER 0, Node's resetAndDestroy).
const KINDS = ['connect', 'half', 'sent', 'live', 'replay', 'health', 'bad'];
const SENT_TARGETS = ['/healthz', '/events?channel=churn.%23', '/events/7d3c1b0e-8a4f-4c2b-9e6d-0f1a2b3c4d5e'];

function closeSock(s, rst) {
  if (s.destroyed) return;
  if (rst && s.readyState === 'open') s.resetAndDestroy();
  else s.destroy();
}

// One cycle. Resolves with a short outcome string (for the tally); never
// rejects. `ctx.head` is a recent log head (for replays).
function cycle(port, kind, rst, i, ctx) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    let phase = 'connecting';
    let settled = false;
    const done = (outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      closeSock(s, rst);
      resolve(outcome);
    };
    // a cycle that waits for the bridge gives up after 5 s (counted, and a
    // stuck cycle shows up in the tally)
    const timer = setTimeout(() => done(`${kind}:timeout:${phase}`), 5000);
    s.on('error', () => done(`${kind}:error:${phase}`));
    // a live stream may be dropped by the bridge when a burst of big events
    // exceeds --client-queue at once: a close, too, cut mid-stream.  The
    // events it caught up on before `ready` count too, so a client the
    // machine's load keeps from reading may be dropped before `ready` has
    // arrived: tallied apart, and each must be one of the bridge's counted
    // slow-client drops (churnCheck)
    s.on('close', () => done(phase === 'live' ? 'ok' : kind === 'live' && phase === 'ready'
      ? 'live:dropped:ready' : `${kind}:closed:${phase}`));
    s.on('connect', () => {
      phase = 'connected';
      switch (kind) {
        case 'connect':
          done('ok');
          return;
        case 'half': {
          const full = STREAM_REQ('/events?channel=churn.%23&lastEventId=0');
          const n = 1 + (i % (full.length - 5));
          s.write(full.slice(0, n), () => done('ok'));
          return;
        }
        case 'sent':
          // gone before the answer: a health check, a stream being opened,
          // a subscription lookup in the database
          s.write(STREAM_REQ(SENT_TARGETS[i % SENT_TARGETS.length]), () => done('ok'));
          return;
        case 'bad':
          // an error response the client never reads
          s.write(STREAM_REQ("/events?channel=churn.a'"), () => done('ok'));
          return;
        case 'live':
          // only big events: the first bytes after `ready` are the start of
          // a ~190 KB frame, so the close cuts it mid-write
          s.write(STREAM_REQ('/events?channel=churn.big'));
          phase = 'head';
          break;
        case 'replay': {
          // a replay of ~30 events (several big ones) from the ring; every
          // 50th goes further back, past the ring, so the replay reads pages
          // from the database and the cut cancels a query
          const back = i % 50 === 4 ? 400 : 30;
          const from = Math.max(0, ctx.head - back);
          s.write(STREAM_REQ(`/events?channel=churn.%23&lastEventId=${from}`));
          phase = 'head';
          break;
        }
        case 'health':
          s.write(STREAM_REQ('/healthz'));
          phase = 'response';
          break;
      }
    });
    let status = null; // '200' once the head is in
    let readyEnd = false; // the ready event has been received completely
    let tail = ''; // the last bytes seen, to find markers across chunks
    s.on('data', (d) => {
      if (kind === 'health') {
        got = Buffer.concat([got, d]);
        return; // read to the end
      }
      const text = tail + d.toString('latin1');
      tail = text.slice(-64);
      if (status === null) {
        got = Buffer.concat([got, d]);
        const h = got.toString('latin1');
        if (!h.includes('\r\n\r\n')) return;
        status = h.slice(9, 12);
        if (status !== '200') {
          done(`${kind}:status:${status}`);
          return;
        }
        phase = 'ready';
      }
      if (kind === 'replay') {
        // the head and the first replayed bytes are in: stop reading, cut
        if (text.includes('\nid: ')) {
          s.pause();
          done('ok');
        }
        return;
      }
      // live: wait for the end of `ready`, then for the first bytes of the
      // next event (a big one: the cut lands in the middle of its frame)
      if (readyEnd) {
        done('ok');
        return;
      }
      const r = text.indexOf('event: ready');
      if (r < 0) return;
      const after = text.indexOf('\n\n', r);
      if (after < 0) return; // rest of ready in the next chunk: tail has it
      phase = 'live';
      readyEnd = true;
      if (text.length > after + 2) done('ok');
    });
    s.on('end', () => {
      if (kind === 'health') done(got.toString('latin1').startsWith('HTTP/1.1 200') ? 'ok' : 'health:bad');
    });
  });
}

export async function runCycles(port, n, { concurrency = 48, offset = 0, ctx }) {
  const tallyMap = new Map();
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const j = i + offset;
      const kind = KINDS[j % KINDS.length];
      const rst = Math.floor(j / KINDS.length) % 2 === 1;
      const c0 = Date.now();
      const out = await cycle(port, kind, rst, j, ctx);
      if (ctx.times) ctx.times[kind] = (ctx.times[kind] || 0) + (Date.now() - c0);
      tallyMap.set(out, (tallyMap.get(out) || 0) + 1);
    }
  };
  // keep the replay start point near the head, whatever the pace
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const m = await metrics(port);
      if (m) ctx.head = m.sse_bridge_head_id;
      await sleep(100);
    }
  })();
  await Promise.all(Array.from({ length: concurrency }, worker));
  polling = false;
  await poller;
  return tallyMap;
}

// Start the publisher: small events on churn.small every ~10 ms and a
// ~190 KB event on churn.big every fourth tick, until abuse_ctl.stop.
export async function startPublisher(pub, ctl) {
  await ctl.q('UPDATE abuse_ctl SET stop = false');
  pub.send(`DO $$
DECLARE i int := 0; t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    EXIT WHEN (SELECT stop FROM abuse_ctl) OR clock_timestamp() > t0 + interval '5 minutes';
    i := i + 1;
    PERFORM sse_publish('churn.small', json_build_object('i', i)::text);
    IF i % 4 = 0 THEN
      PERFORM sse_publish('churn.big', repeat(md5(i::text), 6000), 'big');
    END IF;
    COMMIT;
    PERFORM pg_sleep(0.01);
  END LOOP;
END $$;`);
}

export async function stopPublisher(pub, ctl) {
  await ctl.q('UPDATE abuse_ctl SET stop = true');
  await pub.q('SELECT 1'); // returns once the DO block has ended
}

// Quiescent: only our /metrics request is connected, no stream; then the fd
// count, read until it is the same three times in a row.
async function quiesce(bridge, timeout = 15000) {
  const ok = await until(
    async () => {
      const m = await metrics(bridge.port);
      return m && m.sse_bridge_clients <= 1 && m.sse_bridge_streams === 0;
    },
    { timeout, interval: 100 },
  );
  if (!ok) return null;
  let last = -1;
  let same = 0;
  const fds = await until(
    () => {
      const f = bridge.fds();
      same = f === last ? same + 1 : 0;
      last = f;
      return same >= 2 ? f : null;
    },
    { timeout: 3000, interval: 50 },
  );
  return fds;
}

function fmtTally(t) {
  return [...t.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
}

// The whole churn check against one bridge. rssTolKiB null: no RSS check.
export async function churnCheck(label, bridge, pub, ctl, { cycles = 10000, warmup = 1000, rssTolKiB }) {
  const ctx = { head: 0, times: {} };
  const m0 = await metrics(bridge.port);
  ctx.head = m0 ? m0.sse_bridge_head_id : 0;

  // warm-up: the same mix, so allocator arenas, the replay cache (small and
  // full) and the hub's tables reach their working size
  await startPublisher(pub, ctl);
  await until(async () => ((await metrics(bridge.port))?.sse_bridge_head_id ?? 0) > ctx.head + 200, {
    timeout: 20000,
    interval: 100,
  });
  ctx.head = (await metrics(bridge.port)).sse_bridge_head_id;
  await runCycles(bridge.port, warmup, { ctx, offset: 0 });
  await stopPublisher(pub, ctl);
  const fds0 = await quiesce(bridge);
  const rss0 = bridge.rssKiB();
  const mb = await metrics(bridge.port);
  const conn0 = mb.sse_bridge_connections_total;
  const drops0 = mb.sse_bridge_slow_client_drops_total;
  const bytes0 = mb.sse_bridge_bytes_sent_total;
  const head0 = mb.sse_bridge_head_id;

  await startPublisher(pub, ctl);
  const t0 = Date.now();
  const t = await runCycles(bridge.port, cycles, { ctx, offset: warmup });
  const secs = (Date.now() - t0) / 1000;
  await stopPublisher(pub, ctl);
  const fds1 = await until(
    async () => {
      const f = await quiesce(bridge);
      return f !== null && f <= fds0 ? f : null;
    },
    { timeout: 15000, interval: 200 },
  );
  const fdsNow = bridge.fds();
  const rss1 = bridge.rssKiB();
  const m1 = await metrics(bridge.port);
  const conns = m1.sse_bridge_connections_total - conn0;
  const okCycles = t.get('ok') || 0;
  const early = t.get('live:dropped:ready') || 0;
  const drops = m1.sse_bridge_slow_client_drops_total - drops0;

  note(`${label}: time per kind (ms, summed): ${JSON.stringify(ctx.times)}`);
  note(`${label}: ${cycles} cycles in ${secs.toFixed(1)} s: ${fmtTally(t)}`);
  note(
    `${label}: connections accepted ${conns}, slow-client drops ${m1.sse_bridge_slow_client_drops_total}, ` +
      `events published meanwhile ${m1.sse_bridge_head_id - head0}, ` +
      `${((m1.sse_bridge_bytes_sent_total - bytes0) / 1048576).toFixed(0)} MiB written to clients`,
  );
  check(`${label}: every cycle ran as planned (a stream closed before ready only as a counted slow-client drop)`,
    okCycles + early === cycles && early <= drops, `${fmtTally(t)}; slow-client drops ${drops}`);
  check(
    `${label}: the bridge accepted every connection`,
    conns >= cycles,
    `${conns} connections for ${cycles} cycles`,
  );
  check(
    `${label}: open fds back to the start after the closes`,
    fds1 !== null && fds1 === fds0,
    `before ${fds0}, after ${fds1 ?? fdsNow}`,
  );
  if (rssTolKiB != null) {
    // A leak grows with every round; the allocator's high-water mark does
    // not.  How many connections overlap (and so the heap's peak) depends on
    // how the machine schedules the bridge, so a round over the tolerance is
    // followed by a second, identical one: only growth in both is a leak.
    const d = rss1 - rss0;
    let detail = `before ${rss0} KiB, after ${rss1} KiB, delta ${d >= 0 ? '+' : ''}${d} KiB`;
    let grew = d > rssTolKiB;
    if (grew) {
      await startPublisher(pub, ctl);
      await runCycles(bridge.port, cycles, { ctx, offset: warmup + cycles });
      await stopPublisher(pub, ctl);
      await until(async () => {
        const f = await quiesce(bridge);
        return f !== null && f <= fds0 ? f : null;
      }, { timeout: 15000, interval: 200 });
      const rss2 = bridge.rssKiB();
      const d2 = rss2 - rss1;
      grew = d2 > rssTolKiB;
      detail += `; a second round of ${cycles}: after ${rss2} KiB, delta ${d2 >= 0 ? '+' : ''}${d2} KiB`;
    }
    check(`${label}: VmRSS back within +${rssTolKiB} KiB (a second round decides a first one over it)`, !grew, detail);
  } else {
    note(`${label}: VmRSS before ${rss0} KiB, after ${rss1} KiB (not checked under ASan)`);
  }
  check(`${label}: bridge still running and healthy`, bridge.alive() && m1.sse_bridge_db_up === 1);
  return { fds0, fds1, rss0, rss1, secs };
}

export async function asanVerdict(label, bridge) {
  const r = await bridge.stop();
  const log = bridge.logText();
  const rep = sanitizerReport(log);
  check(`${label}: exits 0 on SIGTERM`, r && r.code === 0 && !r.killed, JSON.stringify(r));
  check(`${label}: no sanitizer report in the log`, !rep, rep ? rep.slice(0, 1500) : '');
}
