// Bridges started by the tests: own port, own log, readiness by /healthz,
// pid recorded for run.sh's trap, and sanitizer reports turned into failures.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { conninfo, ENV, recordPid, tmpPath, uniq } from './env.mjs';
import { request } from './clients.mjs';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Poll fn() until it returns a truthy value; bounded by timeoutMs.
export async function poll(fn, what, { timeoutMs = 20_000, everyMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    }
    await sleep(everyMs);
  }
}

export async function healthz(baseUrl) {
  try {
    return (await request(`${baseUrl}/healthz`, { timeoutMs: 2000 })).status;
  } catch {
    return null;
  }
}

const SANITIZER = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|WARNING: ThreadSanitizer/;

export function sanitizerReport(logText) {
  const i = logText.search(SANITIZER);
  return i < 0 ? null : logText.slice(Math.max(0, i - 200), i + 2000);
}

// Start a bridge. args: extra flags. Returns {url, port, proc, log, stop}.
// waitHealthy: wait for /healthz 200 (default) before returning.
export async function startBridge(args = [], { port = null, waitHealthy = true, name = uniq('bridge') } = {}) {
  const p = port ?? (await freePort());
  const logPath = tmpPath(`${name}.log`);
  const fd = openSync(logPath, 'a');
  const argv = ['--db', conninfo(), '--listen', `127.0.0.1:${p}`, ...args];
  const proc = spawn(ENV.bridgeBin, argv, { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  recordPid(proc.pid);
  const b = {
    port: p,
    url: `http://127.0.0.1:${p}`,
    proc,
    logPath,
    argv,
    exited: new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal }))),
    log: () => {
      try {
        return readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    },
  };
  b.running = () => proc.exitCode === null && proc.signalCode === null;
  // Stop with a signal; returns {code, signal, ms}. Rejects when the bridge
  // needed more than graceMs or left a sanitizer report.
  b.stop = async (signal = 'SIGTERM', { graceMs = 5000, expectZero = true } = {}) => {
    if (!b.running()) {
      const st = await b.exited;
      const rep = sanitizerReport(b.log());
      if (rep) throw new Error(`sanitizer report in ${logPath}:\n${rep}`);
      return { ...st, ms: 0 };
    }
    const t0 = Date.now();
    proc.kill(signal);
    const st = await Promise.race([b.exited, sleep(graceMs).then(() => null)]);
    if (st === null) {
      proc.kill('SIGKILL');
      await b.exited;
      throw new Error(`bridge did not exit within ${graceMs} ms of ${signal}; log ${logPath}`);
    }
    const ms = Date.now() - t0;
    const rep = sanitizerReport(b.log());
    if (rep) throw new Error(`sanitizer report in ${logPath}:\n${rep}`);
    if (expectZero && st.code !== 0) {
      throw new Error(`bridge exited with ${JSON.stringify(st)} after ${signal}; log tail:\n${b.log().slice(-1500)}`);
    }
    return { ...st, ms };
  };
  if (waitHealthy) {
    try {
      await poll(async () => {
        if (!b.running()) throw new Error(`bridge exited early: ${JSON.stringify(await b.exited)}\n${b.log().slice(-1500)}`);
        return (await healthz(b.url)) === 200;
      }, `bridge /healthz on port ${p}`, { timeoutMs: 20_000 });
    } catch (err) {
      if (b.running()) proc.kill('SIGKILL');
      throw err;
    }
  }
  return b;
}

// Start a bridge and stop it (SIGTERM, expecting exit 0) when the test ends.
export async function withBridge(t, args, opts) {
  const b = await startBridge(args, opts);
  t.defer(() => b.stop());
  t.note(`bridge log: ${b.logPath}`);
  return b;
}

// ---------------------------------------------------------------- metrics

// Parse Prometheus text format into [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)(\s+\d+)?$/.exec(line.trim());
    if (!m) throw new Error(`not Prometheus text format: ${JSON.stringify(line)}`);
    out.push({ name: m[1], labels: m[2] || '', value: Number(m[3]) });
  }
  return out;
}

export async function metrics(baseUrl) {
  const res = await request(`${baseUrl}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return { res, list: parseMetrics(res.body) };
}

// The first metric (without _bucket/_count/_sum for histograms) whose name
// matches every regex in `must` and none in `mustNot`.
export function findMetric(list, must, mustNot = []) {
  const cands = list.filter((m) => must.every((r) => r.test(m.name)) && !mustNot.some((r) => r.test(m.name)));
  const plain = cands.filter((m) => !/_(bucket|count|sum)$/.test(m.name));
  return plain[0] || cands[0] || null;
}

// Sum of all samples of a metric name (over labels).
export function metricValue(list, name) {
  return list.filter((m) => m.name === name).reduce((a, m) => a + m.value, 0);
}
