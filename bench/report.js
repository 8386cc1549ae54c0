#!/usr/bin/env node
// Builds the benchmark table from bench/run.sh's raw results.
//   node bench/report.js FACTS.json RESULTS.jsonl OUT.json
// Prints the table on stdout and writes {machine, rows, raw} to OUT.json.
// Nothing here is measured: every number comes from the raw results.
'use strict';
const fs = require('fs');

//   node bench/report.js --from bench/results/latest.json   (reprint only)
let machine;
let raw;
let outFile = null;
if (process.argv[2] === '--from') {
  ({ machine, raw } = JSON.parse(fs.readFileSync(process.argv[3], 'utf8')));
} else {
  const [factsFile, resultsFile, out] = process.argv.slice(2);
  machine = JSON.parse(fs.readFileSync(factsFile, 'utf8'));
  raw = fs.readFileSync(resultsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  outFile = out;
}

const pick = (pred) => raw.filter(pred);
const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && isFinite(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor((v.length - 1) / 2)] : null;
};
const ratio = (a, b) => (a != null && b != null && b !== 0 ? a / b : null);
const rows = [];

function integrity(runs) {
  let bad = 0;
  const notes = [];
  for (const r of runs) {
    const lg = r.loadgen || r.replay;
    if (!lg) { notes.push('no result'); bad++; continue; }
    for (const k of ['gaps', 'dups', 'reorders', 'missing', 'failed', 'parse_errors']) {
      if (lg[k]) { notes.push(`${k}=${lg[k]}`); bad++; }
    }
  }
  return bad ? notes.join(' ') : 'ok';
}

function row(scenario, metric, unit, values, ratios, target, met, notes) {
  rows.push({ scenario, metric, unit, values, ratios, target, met, notes: notes || '' });
}

// ---------------------------------------------------------------- fan-out
// Bridge variants (bench/run.sh BASE_BIN, WORKERS): bridge_base, bridge_wN.
const variants = [...new Set(raw.filter((r) => /^bridge_(base|w[0-9]+)$/.test(r.target)).map((r) => r.target))].sort();
const fanConns = [...new Set(raw.filter((r) => r.scenario === 'fanout').map((r) => r.conns))].sort((a, b) => a - b);
for (const n of fanConns) {
  const thr = {};
  const cpu = {};
  const lgcpu = {};
  const lat = {};
  const integ = {};
  for (const t of ['bridge', 'nchan', 'ceiling', 'ceiling_per_event', ...variants]) {
    const runs = pick((r) => r.scenario === 'fanout' && r.target === t && r.conns === n && r.mode === 'thr');
    if (runs.length) {
      thr[t] = median(runs.map((r) => r.loadgen && r.loadgen.rate));
      cpu[t] = median(runs.map((r) => (r.loadgen && r.loadgen.deliveries ? (r.server_cpu_s * 1e9) / r.loadgen.deliveries : null)));
      lgcpu[t] = median(runs.map((r) => (r.loadgen && r.loadgen.deliveries && r.loadgen.cpu_s != null ? (r.loadgen.cpu_s * 1e9) / r.loadgen.deliveries : null)));
      integ[t] = integrity(runs);
    }
    const l = pick((r) => r.scenario === 'fanout' && r.target === t && r.conns === n && r.mode === 'lat')[0];
    if (l && l.loadgen) {
      lat[t] = l.loadgen.lat_us;
      integ[t] = integ[t] === 'ok' || integ[t] == null ? integrity([l]) : integ[t];
    }
  }
  if (Object.keys(thr).length) {
    const rn = ratio(thr.bridge, thr.nchan);
    const rc = ratio(thr.bridge, thr.ceiling);
    const rcc = ratio(thr.bridge, thr.ceiling_per_event);
    row(`fan-out ${n}`, 'deliveries/s (median)', 'ev/s',
      { bridge: thr.bridge, nchan: thr.nchan, ceiling: thr.ceiling, ceiling_per_event: thr.ceiling_per_event },
      { bridge_nchan: rn, bridge_ceiling: rc, bridge_ceiling_per_event: rcc },
      '>= 1.5x Nchan and >= 0.7x ceiling',
      rn != null && rc != null ? rn >= 1.5 && rc >= 0.7 : null,
      `integrity: ${Object.entries(integ).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  if (Object.keys(cpu).length) {
    row(`fan-out ${n}`, 'server CPU per delivery (median)', 'ns',
      { bridge: cpu.bridge, nchan: cpu.nchan, ceiling: cpu.ceiling, ceiling_per_event: cpu.ceiling_per_event },
      { bridge_nchan: ratio(cpu.bridge, cpu.nchan), bridge_ceiling: ratio(cpu.bridge, cpu.ceiling) }, '', null,
      Object.values(lgcpu).some((v) => v != null)
        ? `load generator CPU per delivery: ${Object.entries(lgcpu).filter(([, v]) => v != null).map(([k, v]) => `${k} ${Math.round(v)} ns`).join(', ')}` : '');
  }
  for (const v of variants) {
    if (thr[v] == null && cpu[v] == null) continue;
    row(`fan-out ${n}`, `${v}: deliveries/s, CPU per delivery`, 'ev/s',
      { bridge: thr[v], ceiling: thr.ceiling },
      { [`${v}_ceiling`]: ratio(thr[v], thr.ceiling), [`${v}_bridge`]: ratio(thr[v], thr.bridge),
        [`${v}_cpu_over_ceiling`]: ratio(cpu[v], cpu.ceiling), [`bridge_cpu_over_${v}`]: ratio(cpu.bridge, cpu[v]) },
      '', null,
      `${v}: ${cpu[v] != null ? Math.round(cpu[v]) : '-'} ns CPU per delivery (bridge ${cpu.bridge != null ? Math.round(cpu.bridge) : '-'}, ceiling ${cpu.ceiling != null ? Math.round(cpu.ceiling) : '-'}); integrity ${integ[v]}` +
      (lgcpu[v] != null ? `; load generator ${Math.round(lgcpu[v])} ns per delivery` : ''));
  }
  if (Object.keys(lat).length) {
    const p = (t, k) => (lat[t] ? lat[t][k] : null);
    const rp = ratio(p('bridge', 'p99'), p('nchan', 'p99'));
    for (const k of ['p50', 'p99', 'max']) {
      row(`fan-out ${n}`, `latency ${k} (paced)`, 'us',
        { bridge: p('bridge', k), nchan: p('nchan', k), ceiling: p('ceiling', k) },
        { bridge_nchan: ratio(p('bridge', k), p('nchan', k)), bridge_ceiling: ratio(p('bridge', k), p('ceiling', k)) },
        k === 'p99' ? 'p99 <= Nchan p99' : '',
        k === 'p99' ? (rp != null ? rp <= 1 : null) : null,
        k === 'p99' ? `offered load ${machine.lat_deliveries_per_s} deliveries/s` : '');
    }
  }
}

// ---------------------------------------------------------------- selective
{
  const all = (t) => pick((r) => r.scenario === 'selective' && r.target === t);
  const get = (t) => all(t)[0];
  const b = get('bridge');
  const s = get('bridge_scan');
  const nc = get('nchan');
  const sm = get('bridge_small');
  const cpuPerEv = (r) => (r && r.loadgen && r.events ? (r.server_cpu_s * 1e6) / r.events : null);
  const rate = (r) => (r && r.loadgen ? r.loadgen.rate : null);
  // medians over the alternating runs
  const medOf = (t, f) => (all(t).length ? median(all(t).map(f)) : null);
  const rateMed = (t) => medOf(t, rate);
  const cpuMed = (t) => medOf(t, cpuPerEv);
  if (b || nc) {
    const scanAvail = s && !s.unavailable;
    row('selective', 'deliveries/s', 'ev/s',
      { bridge: rateMed('bridge'), bridge_scan: scanAvail ? rateMed('bridge_scan') : null, nchan: rate(nc) },
      { bridge_scan: scanAvail ? ratio(rateMed('bridge'), rateMed('bridge_scan')) : null, bridge_nchan: ratio(rateMed('bridge'), rate(nc)) },
      '', null,
      `${b ? b.conns : ''} streams, ${b ? b.jobs : ''} filter values, medians of ${all('bridge').length} alternating runs; ` +
      `integrity: bridge ${b ? integrity(all('bridge')) : '-'}` +
      `${scanAvail ? `, scan ${integrity(all('bridge_scan'))}` : ''}, nchan ${nc ? integrity([nc]) : '-'}`);
    // filter evaluations per published event, from the bridge's /metrics
    const evals = (r) => {
      if (!r || !r.metrics || !r.metrics.before) return null;
      const k = Object.keys(r.metrics.after).find((x) => /filter_eval/.test(x));
      return k ? (r.metrics.after[k] - (r.metrics.before[k] || 0)) / r.events : null;
    };
    if (evals(b) != null) {
      row('selective', 'filter evaluations per event', 'n',
        { bridge: evals(b), bridge_scan: scanAvail ? evals(s) : null }, {}, '', null, '');
    }
    const smp = get('bridge_small_plus');
    if (sm && smp) {
      row('selective', 'CPU per event, active streams alone / beside 9x idle ones', 'us',
        { bridge: cpuPerEv(smp) }, { plus_idle_over_alone: ratio(cpuPerEv(smp), cpuPerEv(sm)) }, '', null,
        `${sm.conns} active streams, alone: ${cpuPerEv(sm) == null ? '-' : cpuPerEv(sm).toFixed(1)} us/event; beside ` +
        `${b ? b.conns - sm.conns : '?'} streams that match nothing: ${cpuPerEv(smp) == null ? '-' : cpuPerEv(smp).toFixed(1)} us/event ` +
        '(cost follows matches, not subscriptions, when the ratio is near 1)');
    }
    const ci = cpuMed('bridge');
    const cs = scanAvail ? cpuMed('bridge_scan') : null;
    row('selective', 'server CPU per published event', 'us',
      { bridge: ci, bridge_scan: cs, nchan: cpuPerEv(nc) },
      { scan_over_index: ratio(cs, ci), bridge_nchan: ratio(ci, cpuPerEv(nc)) },
      '>= 10x faster than evaluating every filter',
      cs != null && ci != null ? cs / ci >= 10 : null,
      !scanAvail ? 'the scan mode was not measured'
        : s.scan_how === 'nested' ? 'scan: the bridge has no --filter-index switch; measured with the same filters one level down ({"n":{"job":…}}), which its key/value index cannot cover'
          : 'scan: --filter-index off');
  }
}

// ---------------------------------------------------------------- idle
{
  const per = {};
  const anon = {};
  for (const t of ['bridge', 'nchan', 'ceiling', ...variants]) {
    const r = pick((x) => x.scenario === 'idle' && x.target === t)[0];
    if (r && r.rss1_kb != null && r.loadgen && r.loadgen.ready > 0) {
      per[t] = ((r.rss1_kb - r.rss0_kb) * 1024) / r.loadgen.ready;
      anon[t] = ((r.anon1_kb - r.anon0_kb) * 1024) / r.loadgen.ready;
    }
  }
  if (Object.keys(per).length) {
    row('idle', 'RSS per idle connection', 'bytes', per,
      { bridge_nchan: ratio(per.bridge, per.nchan), bridge_ceiling: ratio(per.bridge, per.ceiling) },
      '<= 1024 bytes', per.bridge != null ? per.bridge <= 1024 : null,
      `anonymous RSS per connection: ${Object.entries(anon).map(([k, v]) => `${k} ${Math.round(v)}`).join(', ')}` +
      variants.filter((v) => per[v] != null).map((v) => `; ${v}: RSS ${Math.round(per[v])} per connection`).join(''));
  }
}

// ---------------------------------------------------------------- replay
{
  const vals = {};
  const idle = {};
  const during = {};
  const integ = {};
  for (const t of ['bridge', 'nchan']) {
    const r = pick((x) => x.scenario === 'replay' && x.target === t)[0];
    if (!r) continue;
    vals[t] = r.replay ? r.replay.elapsed_s : null;
    idle[t] = r.live_idle ? r.live_idle.lat_us.p99 : null;
    during[t] = r.live_during ? r.live_during.lat_us.p99 : null;
    integ[t] = integrity([{ replay: r.replay }]);
    if (r.replay && r.replay.complete_conns !== r.clients) integ[t] += ` (${r.replay.complete_conns}/${r.clients} caught up)`;
  }
  if (Object.keys(vals).length) {
    const first = pick((x) => x.scenario === 'replay')[0];
    row('replay', 'time until all caught up', 's', vals,
      { bridge_nchan: ratio(vals.bridge, vals.nchan) }, '', null,
      `${first.clients} clients x ${first.behind} events behind; integrity: ` +
      Object.entries(integ).map(([k, v]) => `${k} ${v}`).join(', '));
    row('replay', 'live p99 idle', 'us', idle, { bridge_nchan: ratio(idle.bridge, idle.nchan) }, '', null);
    const g = {};
    for (const t of Object.keys(during)) g[t] = ratio(during[t], idle[t]);
    const p50s = ['bridge', 'nchan'].map((t) => {
      const r = pick((x) => x.scenario === 'replay' && x.target === t)[0];
      return r && r.live_idle && r.live_during
        ? `${t} live p50 ${r.live_idle.lat_us.p50} -> ${r.live_during.lat_us.p50} us` : null;
    }).filter(Boolean).join(', ');
    row('replay', 'live p99 during replay', 'us', during,
      { bridge_during_over_idle: g.bridge, nchan_during_over_idle: g.nchan }, 'during <= 2x idle',
      g.bridge != null ? g.bridge <= 2 : null, p50s);
  }
}

// ---------------------------------------------------------------- publish
{
  const r = pick((x) => x.scenario === 'publish')[0];
  if (r) {
    const rs = r.rows || [];
    const worst = rs.length ? Math.min(...rs.map((x) => x.ratio)) : null;
    row('publish', 'sse_publish / INSERT+pg_notify (worst case)', 'ratio', { bridge: worst },
      { bridge_insert_notify: worst }, '>= 0.85', worst != null ? worst >= 0.85 : null,
      r.unavailable ? 'bench/publish/run.sh not present' : r.failed ? 'bench/publish/run.sh failed'
        : rs.map((x) => `${x.events_per_txn} ev/txn x ${x.clients} clients: ${Math.round(x.sse)} vs ${Math.round(x.plain)} ev/s = ${x.ratio.toFixed(2)}`).join('; '));
  }
}

// ---------------------------------------------------------------- memory
for (const r of pick((x) => x.scenario === 'memory')) {
  const m = r.metrics || {};
  const f = r.fast || {};
  row('memory', `peak RSS, ${r.phase}: ${r.slow_clients} slow + 4 fast readers, ${r.events} x 1 MB replayed`, 'MB',
    { bridge: r.hwm_kb != null ? r.hwm_kb / 1024 : null }, {}, `<= ${r.bound_kb / 1024} (--max-memory)`,
    r.hwm_kb != null ? r.hwm_kb <= r.bound_kb : null,
    `fast readers ${f.done}/${f.clients} complete in ${f.seconds} s, order errors ${f.order_errors}; ` +
    `queue peak ${m.sse_bridge_client_queue_peak_bytes} B; refused ${m.sse_bridge_memory_refused_total}; ` +
    `shed ${m.sse_bridge_memory_shed_total}; slow readers: ${r.slow ? r.slow.events : '?'} events, ` +
    `${r.slow ? r.slow.refused : '?'} refused, ${r.slow ? r.slow.drops : '?'} dropped`);
}

// ---------------------------------------------------------------- proxy
{
  const r = pick((x) => x.scenario === 'proxy')[0];
  if (r) {
    const p = r.result;
    row('proxy', 'latency added by deploy/nginx.conf (TLS, HTTP/2), p50', 'us', { bridge: p ? p.p50_us : null }, {},
      '', null, p ? `p90 ${p.p90_us} us, p99 ${p.p99_us} us, max ${p.max_us} us over ${p.events} events` : 'bench/proxy.sh failed');
  }
}

// ---------------------------------------------------------------- standby
{
  const r = pick((x) => x.scenario === 'standby')[0];
  if (r) {
    const s = r.result;
    const lp = s && s.latency.primary.lat_us, ls = s && s.latency.standby.lat_us;
    const ratio = (a, b) => (a && b ? Math.round((a / b) * 100) / 100 : null);
    row('standby', 'write-to-client latency through a standby\'s bridge / the primary\'s, p50', 'ratio',
      { bridge: s ? ratio(ls.p50, lp.p50) : null }, {}, '', null,
      s ? `p50 ${ls.p50} / ${lp.p50} us, p99 ${ls.p99} / ${lp.p99} us (ratio ${ratio(ls.p99, lp.p99)}); ` +
        `${s.lat_conns} clients per bridge, ${s.events} events at ${s.rate}/s` : 'bench/standby.sh failed');
    if (s) {
      const c0 = s.cost['0'], c3 = s.cost['3'];
      const n = (c) => Object.values(c.primary_connections || {}).reduce((a, b) => a + b, 0);
      row('standby', 'primary CPU with 3 standby bridges / with 0', 'ratio',
        { bridge: ratio(c3.primary_cpu_s, c0.primary_cpu_s) }, {}, '', null,
        `${c3.primary_cpu_s} / ${c0.primary_cpu_s} s for ${s.events} events; connections ` +
        `${JSON.stringify(c3.primary_connections)} / ${JSON.stringify(c0.primary_connections)} ` +
        `(${n(c3) - n(c0)} more: the --primary-db links); ${s.conns_per_bridge} clients per bridge`);
    }
  }
}

// ---------------------------------------------------------------- filter cost
{
  const r = pick((x) => x.scenario === 'filtercost')[0];
  if (r) {
    const f = r.figures || {};
    row('filtercost', 'CPU per filter at the limits, 1 MB event (max)', 'us', { bridge: f.per_filter_max_us },
      {}, '< 1000', f.per_filter_max_us != null ? f.per_filter_max_us < 1000 : null,
      r.failed ? 'bench/filter_worst failed'
        : `${f.elements} array elements, ${f.filters} filters of 1024 values: mean ${f.per_filter_mean_us} us; ` +
          `once per event: parse ${f.parse_us} us, array hashes ${f.first_us} us; direct scan (before) ${f.direct_us} us per filter`);
  }
}

// ---------------------------------------------------------------- print
const fmt = (v, unit) => {
  if (v == null) return '-';
  if (unit === 'ratio') return v.toFixed(2);
  if (unit === 's' || unit === 'us' && v < 10) return v.toFixed(2);
  if (Math.abs(v) >= 10000) return `${(v / 1000).toFixed(0)}k`;
  return v >= 100 ? v.toFixed(0) : v.toFixed(1);
};
const fmtRatios = (r) => Object.entries(r).filter(([, v]) => v != null).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ') || '-';
const head = ['scenario', 'metric', 'sse_bridge', 'Nchan', 'ceiling', 'ratios', 'target', 'met'];
const lines = rows.map((r) => [
  r.scenario, `${r.metric} [${r.unit}]`,
  fmt(r.values.bridge, r.unit) + (r.values.bridge_scan != null ? ` (scan ${fmt(r.values.bridge_scan, r.unit)})` : ''),
  fmt(r.values.nchan, r.unit),
  fmt(r.values.ceiling, r.unit) + (r.values.ceiling_per_event != null ? ` (per-event ${fmt(r.values.ceiling_per_event, r.unit)})` : ''),
  fmtRatios(r.ratios), r.target || '', r.met == null ? (r.target ? 'n/a' : '') : r.met ? 'yes' : 'NO',
]);
const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
const out = [head, widths.map((w) => '-'.repeat(w)), ...lines]
  .map((l) => `| ${l.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`).join('\n');
console.log(`\nsse_bridge benchmarks (${machine.command}; ${machine.cores} cores, kernel ${machine.kernel}, ` +
  `PostgreSQL ${machine.postgres}, nginx ${machine.nginx}, nchan ${machine.nchan}, ${machine.date})\n`);
console.log(out);
const notes = rows.filter((r) => r.notes).map((r) => `- ${r.scenario} / ${r.metric}: ${r.notes}`);
if (notes.length) console.log(`\n${notes.join('\n')}`);
if (outFile) {
  fs.writeFileSync(outFile, `${JSON.stringify({ machine, rows, raw }, null, 2)}\n`);
  console.log(`\nwritten: ${outFile}`);
}
