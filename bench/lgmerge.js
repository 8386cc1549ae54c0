#!/usr/bin/env node
// Merges the JSON lines of several loadgen processes (run with --hist) into
// one line of the same shape, as if one process had held every stream.
//   node bench/lgmerge.js A.json B.json ...   (the last line of each file)
// Counters are summed; times are taken from the wall-clock stamps
// (first_pub_us, first_recv_us, last_recv_us); the latency quantiles come
// from the merged histograms, and "done_us" gives the quantiles of the
// per-stream completion (the latency of the event that completed each
// stream, with --expect-per-conn).
'use strict';
const fs = require('fs');

// bucket index -> upper bound of its values (loadgen.c, lg_hist_value)
const bucketValue = (i) => {
  if (i < 128) return i;
  const e = Math.floor((i - 128) / 64) + 1;
  const sub = ((i - 128) % 64) + 64;
  return (sub + 1) * 2 ** e - 1;
};

function quantiles(buckets, max) {
  const n = buckets.reduce((a, [, c]) => a + c, 0);
  const q = (p) => {
    if (!n) return 0;
    const rank = Math.max(1, Math.ceil(p * n));
    let seen = 0;
    for (const [i, c] of buckets) {
      seen += c;
      if (seen >= rank) return Math.min(bucketValue(i), max != null ? max : Infinity);
    }
    return max;
  };
  return { n, p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999) };
}

function mergeBuckets(lists) {
  const m = new Map();
  for (const l of lists) for (const [i, c] of l || []) m.set(i, (m.get(i) || 0) + c);
  return [...m.entries()].sort((a, b) => a[0] - b[0]);
}

const runs = process.argv.slice(2).map((f) => {
  const lines = fs.readFileSync(f, 'utf8').split('\n').filter((l) => l.startsWith('{'));
  return lines.length ? JSON.parse(lines[lines.length - 1]) : null;
});
const ok = runs.filter(Boolean);
const out = { label: ok.length ? ok[0].label : '', processes: runs.length, missing_outputs: runs.length - ok.length };
out.end = [...new Set(ok.map((r) => r.end))].join(',');
for (const k of ['conns', 'connected', 'ready', 'failed', 'bad_status', 'eof', 'deliveries', 'complete_conns',
  'missing', 'gaps', 'dups', 'reorders', 'resets', 'close_events', 'other_events', 'parse_errors', 'bytes', 'cpu_s']) {
  out[k] = ok.reduce((a, r) => a + (r[k] || 0), 0);
}
out.first_error = (ok.find((r) => r.first_error) || {}).first_error || 0;
out.ready_s = Math.max(0, ...ok.map((r) => r.ready_s || 0));
out.elapsed_s = Math.max(0, ...ok.map((r) => r.elapsed_s || 0));
const nz = (xs) => xs.filter((x) => x > 0);
out.first_pub_us = Math.min(...nz(ok.map((r) => r.first_pub_us)), Infinity);
out.first_recv_us = Math.min(...nz(ok.map((r) => r.first_recv_us)), Infinity);
out.last_recv_us = Math.max(0, ...ok.map((r) => r.last_recv_us || 0));
if (!isFinite(out.first_pub_us)) out.first_pub_us = 0;
if (!isFinite(out.first_recv_us)) out.first_recv_us = 0;
out.recv_span_s = out.first_recv_us ? (out.last_recv_us - out.first_recv_us) / 1e6 : 0;
out.pub_span_s = out.first_pub_us ? (out.last_recv_us - out.first_pub_us) / 1e6 : 0;
out.rate = out.pub_span_s > 0 ? Math.round(out.deliveries / out.pub_span_s) : 0;
out.rate_recv = out.recv_span_s > 0 ? Math.round(out.deliveries / out.recv_span_s) : 0;
const lat = ok.map((r) => r.lat_us).filter((l) => l && l.n);
const latMax = Math.max(0, ...lat.map((l) => l.max));
out.lat_us = {
  ...quantiles(mergeBuckets(ok.map((r) => r.hist)), latMax),
  min: lat.length ? Math.min(...lat.map((l) => l.min)) : 0,
  mean: lat.length ? Math.round(lat.reduce((a, l) => a + l.mean * l.n, 0) / lat.reduce((a, l) => a + l.n, 0)) : 0,
  max: latMax,
};
out.done_us = quantiles(mergeBuckets(ok.map((r) => r.done)), latMax);
out.done_us.max = out.done_us.n ? bucketValue(Math.max(...mergeBuckets(ok.map((r) => r.done)).map(([i]) => i))) : 0;
if (out.done_us.max > latMax) out.done_us.max = latMax;
console.log(JSON.stringify(out));
