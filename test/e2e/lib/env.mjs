// Settings handed over by run.sh through the environment.
import { randomBytes } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run test/e2e/run.sh`);
  return v;
}

const here = dirname(dirname(fileURLToPath(import.meta.url)));

export const ENV = {
  here,
  bridgeBin: need('E2E_BRIDGE_BIN'),
  db: need('E2E_DB'),
  tmp: need('E2E_TMP'),
  pidFile: need('E2E_PIDFILE'),
  mainUrl: need('E2E_MAIN_URL'),
  mainLog: process.env.E2E_MAIN_LOG || '',
  sseclient: need('E2E_SSECLIENT'),
  pgdata: need('SSE_PGDATA'),
  pgbin: need('SSE_PGBIN'),
  // the retry value the main bridge was started with (ms)
  mainRetryMs: Number(process.env.E2E_MAIN_RETRY_MS || 300),
};

// Conninfo for bridges started by the tests.
export function conninfo() {
  const p = process.env;
  return `host=${p.PGHOST} port=${p.PGPORT} user=${p.PGUSER || 'postgres'} dbname=${ENV.db}`;
}

// A fresh name segment so that every test reads only its own channels.
export function uniq(prefix = 't') {
  return `${prefix}${randomBytes(4).toString('hex')}`;
}

export function tmpPath(name) {
  return join(ENV.tmp, name);
}

// Record a child process for run.sh's exit trap as "pid starttime", so the
// trap signals it only while that pid still names the same process.
export function recordPid(pid) {
  let start = '0';
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    start = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19];
  } catch {
    // already gone: nothing to stop later
    return;
  }
  appendFileSync(ENV.pidFile, `${pid} ${start}\n`);
}
