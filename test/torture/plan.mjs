// plan.mjs - the torture test's subscriber table.
//
//   node plan.mjs --phase pre|main --out FILE --seed N --subscribers N
//
// "pre" creates the server-side subscriptions that exist before any event is
// published; "main" (run while publishers are already busy) creates the rest
// and adds the ad-hoc streams.  Both append to FILE, one tab-separated line
// per subscriber:
//   name client path initial_lid lid_mode flags patterns filter start
// start is the id after which the subscriber expects every matching event:
// the subscription's start_id, the Last-Event-ID it opens with, or "head"
// (an ad-hoc stream opened without one starts at the head its first "ready"
// announces).  Subscriptions are created with psql (libpq environment), with
// every value passed as a psql variable, never spliced into SQL text.
//
// "main" also adds the terminal subscribers fin0..fin6, which the harness
// ends while publishers run (torture.sh, end_subs).  Their flags carry
// end=unsubscribe|expire|close (the change that ends them), sid=N (verify
// needs it once the subscription row is gone) and, for some, lag: the
// client holds the stream off across the change (tclient.c, tnode.mjs), so
// it must replay up to the marker when it comes back.  Close subscribers
// name the channel t.fin.a literally (publishers also publish there, and
// the harness closes it once); fin6 is an ad-hoc stream naming it too.
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((a, v, i, all) => (i % 2 === 0 ? [...a, [v.replace(/^--/, ''), all[i + 1]]] : a), []));
const total = Number(args.subscribers || 56);
const phase = args.phase;

// Ad-hoc: every pattern lies inside the public pattern "t.#".
const ADHOC = [
  [['t.#'], '{}'],
  [['t.orders.*'], '{}'],
  [['t.*.eu'], '{}'],
  [['t.jobs.#'], '{"kind":"job"}'],
  [['t.chat.general', 't.chat.random'], '{}'],
  [['t.#'], '{"region":"eu"}'],
  [['t.#'], '{"tags":["red"]}'],
  [['t.big.blob'], '{}'],
  [['t.orders.eu', 't.jobs.#'], '{"prio":3}'],
  [['t.#'], '{"meta":{"src":"api"}}'],
  [['t.*.*'], '{}'],
  [['t.misc'], '{}'],
];
// Subscriptions may use any pattern.
const SUBS = [
  [['#'], '{}'],
  [['t.orders.#'], '{"kind":"order"}'],
  [['#.urgent', 't.chat.*'], '{}'],
  [['*.jobs.*'], '{"region":"us"}'],
  [['t.#'], '{"prio":3.0}'],
  [['t.big.blob', 't.misc'], '{}'],
  [['#.eu'], '{"kind":"order","region":"eu"}'],
  [['t.#'], '{"tags":["blue","red"]}'],
];

function psql(sql, vars) {
  const v = Object.entries(vars).flatMap(([k, val]) => ['-v', `${k}=${val}`]);
  return execFileSync('psql', ['-qAtX', '-v', 'ON_ERROR_STOP=1', ...v], { input: sql, encoding: 'utf8' }).trim();
}

function subscribe(patterns, filter) {
  const arr = '{' + patterns.map((p) => '"' + p + '"').join(',') + '}';
  const out = psql(
    "SELECT sse_subscribe_filter(:'ch'::text[], :'f'::jsonb, '2 hours') AS sid \\gset\n" +
    "SELECT s.id, s.start_id, s.sid FROM sse_bridge.subscriptions s WHERE s.id = :'sid';\n",
    { ch: arr, f: filter });
  const [id, start, sid] = out.split('|');
  if (!/^[0-9a-f-]{36}$/.test(id) || !/^[0-9]+$/.test(start) || !/^[0-9]+$/.test(sid)) {
    throw new Error('unexpected subscription row: ' + out);
  }
  return { id, start, sid };
}

function head() {
  return psql('SELECT greatest((SELECT max(id) FROM sse_bridge.events), pruned_through) FROM sse_bridge.meta;\n', {}) || '0';
}

const lines = [];
const line = (f) => lines.push(f.join('\t'));
// Roughly 40 % subscriptions, 60 % ad hoc, alternating C and Node clients.
const nSubs = Math.round(total * 0.4);
const nPre = Math.ceil(nSubs / 2);

if (phase === 'pre') {
  for (let i = 0; i < nPre; i++) {
    const [pats, filt] = SUBS[i % SUBS.length];
    const { id, start } = subscribe(pats, filt);
    const client = i % 2 ? 'node' : 'c';
    const flags = i === 0 ? 'race' : i === 1 ? 'steady' : '-';
    line([`sub${i}-${client}`, client, `/events/${id}`, '-', 'header', flags, pats.join(','), filt, start]);
  }
} else if (phase === 'main') {
  for (let i = nPre; i < nSubs; i++) {
    const [pats, filt] = SUBS[i % SUBS.length];
    const { id, start } = subscribe(pats, filt);
    const client = i % 2 ? 'node' : 'c';
    line([`sub${i}-${client}`, client, `/events/${id}`, '-', 'header', '-', pats.join(','), filt, start]);
  }
  const h = Number(head());
  for (let i = 0; i < total - nSubs; i++) {
    const [pats, filt] = ADHOC[i % ADHOC.length];
    const client = i % 2 ? 'node' : 'c';
    const q = pats.map((p) => 'channel=' + encodeURIComponent(p));
    if (filt !== '{}' || i % 3 === 0) q.push('filter=' + encodeURIComponent(filt));
    // start modes: at the head, replay from an id by header, or by query
    const mode = i % 3;
    const lid = mode === 0 ? '-' : String(Math.max(0, h - 50 * (i % 5)));
    const start = mode === 0 ? 'head' : lid;
    let flags = '-';
    if (i === 0) flags = 'slow';
    else if (i === 2) flags = 'race';
    else if (i === 4) flags = 'steady';
    line([`adhoc${i}-${client}`, client, '/events?' + q.join('&'), lid, mode === 2 ? 'query' : 'header', flags,
      pats.join(','), filt, start]);
  }
  // terminal subscribers: [client, end, lag, patterns, filter]
  const FIN = [
    ['c', 'unsubscribe', true, ['t.#'], '{"region":"eu"}'],
    ['node', 'unsubscribe', false, ['t.orders.#', 't.fin.b'], '{}'],
    ['c', 'expire', false, ['#'], '{"kind":"order"}'],
    ['node', 'expire', true, ['t.jobs.#', 't.fin.b'], '{}'],
    ['c', 'close', true, ['t.fin.a', 't.chat.*'], '{}'],
    ['node', 'close', false, ['t.fin.a', '#.eu'], '{"prio":3}'],
  ];
  FIN.forEach(([client, end, lag, pats, filt], i) => {
    const { id, start, sid } = subscribe(pats, filt);
    const flags = [...(lag ? ['lag'] : []), `end=${end}`, `sid=${sid}`].join(',');
    line([`fin${i}-${client}`, client, `/events/${id}`, '-', 'header', flags, pats.join(','), filt, start]);
  });
  const finPats = ['t.fin.a', 't.misc'];
  line(['fin6-node', 'node', '/events?' + finPats.map((p) => 'channel=' + encodeURIComponent(p)).join('&'), '-',
    'header', 'end=close', finPats.join(','), '{}', 'head']);
} else {
  process.stderr.write('usage: plan.mjs --phase pre|main --out FILE\n');
  process.exit(2);
}
appendFileSync(args.out, lines.map((l) => l + '\n').join(''));
