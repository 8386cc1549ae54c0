// Abuse tests against running bridges; see run.sh for the environment.
//   node main.mjs [check ...]     checks: wire inject secrecy slowloris cors mainstop faults churn asan asaninput
import { asanVerdict, churnCheck } from './churn.mjs';
import { corsHeaderChecks, corsStartupChecks, fragmentChecks, staticChecks } from './cors.mjs';
import { faultChecks } from './faults.mjs';
import { Bridge, Psql, check, label, note, psqlSync, tally } from './lib.mjs';
import { injectChecks } from './inject.mjs';
import { secrecyChecks } from './secrecy.mjs';
import { slowlorisChecks } from './slowloris.mjs';
import { filterChecks } from './filters.mjs';
import { floodChecks } from './flood.mjs';
import { fdLimitChecks, headChecks } from './limits.mjs';
import { plantTrojans, trojanRun } from './trojan.mjs';
import { maxClientsChecks, wireChecks } from './wire.mjs';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};

const cfg = {
  db: env('ABUSE_DB'),
  bin: env('ABUSE_BRIDGE'),
  asan: process.env.ABUSE_BRIDGE_ASAN || '',
  fi: process.env.ABUSE_BRIDGE_FI || '',
  failEvery: (process.env.ABUSE_FAIL_EVERY || '3 7 13 31 61 127').split(/\s+/).filter(Boolean).map(Number),
  faultRounds: Number(process.env.ABUSE_FAULT_ROUNDS || 60),
  tmp: env('ABUSE_TMP'),
  serverLog: process.env.ABUSE_SERVER_LOG || '',
  pidfile: env('ABUSE_PIDFILE'),
  cycles: Number(process.env.ABUSE_CYCLES || 10000),
  variants: Object.fromEntries(['nopin', 'unqual', 'bare'].map((v) => [v, process.env[`ABUSE_BRIDGE_${v.toUpperCase()}`] || ''])),
};

const bridges = [];
function bridge(name, args, { bin = cfg.bin, env: e, conninfo } = {}) {
  const b = new Bridge(name, { bin, db: cfg.db, conninfo, args, tmp: cfg.tmp, pidfile: cfg.pidfile, env: e });
  bridges.push(b);
  return b;
}

async function started(b) {
  const ok = await b.start();
  check(`${b.name}: bridge starts and answers /healthz`, ok, ok ? `port ${b.port}` : b.logText().slice(-500));
  return ok;
}

// The main bridge (wire, inject, secrecy, slowloris): ad hoc on pub.#, a
// 2 s header timeout, 4 KiB heads, info logging, 1 s touch/expire period;
// its database sessions log every statement (log_statement = all) so the
// server log shows what it sends.
const MAX_HEAD = 4096;
const MAIN_ARGS = ['--public-channels', 'pub.#', '--header-timeout', '2', '--max-header-bytes', String(MAX_HEAD),
  '--log-level', 'info', '--touch-interval', '1', '--keepalive', '30'];
const MAIN_CONNINFO = "options='-c log_statement=all'";
const ASAN_ENV = {
  ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0',
  UBSAN_OPTIONS: process.env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=0',
};
let mainBridge = null;
async function main() {
  if (mainBridge) return mainBridge.alive() ? mainBridge : null;
  mainBridge = bridge('main', MAIN_ARGS, { conninfo: MAIN_CONNINFO });
  return (await started(mainBridge)) ? mainBridge : null;
}

// After its checks: the main bridge never died, and stops cleanly.
async function mainVerdict() {
  if (!mainBridge || !mainBridge.proc) return;
  const alive = mainBridge.alive();
  check('main: still running after wire, inject, secrecy and slowloris', alive, alive ? '' : JSON.stringify(await mainBridge.exit));
  const r = await mainBridge.stop();
  check('main: exits 0 on SIGTERM', r && r.code === 0 && !r.killed, JSON.stringify(r));
}

// ------------------------------------------------------------ checks

const checks = {
  async filters() {
    const b = bridge('filters', ['--public-channels', 'pub.#', '--max-header-bytes', '65536', '--log-level', 'info']);
    if (!(await started(b))) return;
    const psql = new Psql(cfg.db);
    try {
      await filterChecks(b, psql);
    } finally {
      await psql.close();
      await b.stop();
    }
  },

  // --cors-origin at startup and on the wire, the helper's files, "#" cut off
  async cors() {
    corsStartupChecks(cfg.bin);
    const b = bridge('cors', ['--public-channels', 'pub.#', '--cors-origin', 'http://127.0.0.1:8000/, HTTPS://App.Example:443, http://[::1]:08080']);
    if (await started(b)) {
      try {
        await corsHeaderChecks(b);
      } finally {
        await b.stop();
      }
    }
    const m = await main();
    if (!m) return;
    await staticChecks(m.port, 'without --cors-origin');
    await fragmentChecks(m.port);
  },

  // allocation failures never answer a valid request with a 4xx
  async faults() {
    if (!cfg.fi) {
      check('faults: fault-injection build available', false, 'ABUSE_BRIDGE_FI not set (make bridge-fi)');
      return;
    }
    const psql = new Psql(cfg.db);
    try {
      await faultChecks(async (n) => {
        const b = bridge(`faults-${n}`, ['--public-channels', 'pub.#, other.x', '--log-level', 'error'], {
          bin: cfg.fi,
          env: { ...ASAN_ENV, SSE_BRIDGE_FAIL_EVERY: String(n) },
        });
        return (await started(b)) ? b : null;
      }, psql, { everies: cfg.failEvery, rounds: cfg.faultRounds });
    } finally {
      await psql.close();
    }
  },

  async fdlimit() {
    await fdLimitChecks({ bin: cfg.bin, db: cfg.db, tmp: cfg.tmp, pidfile: cfg.pidfile, bridges });
  },

  async methods() {
    const b = await main();
    if (b) await headChecks(b);
  },

  async flood() {
    const b = bridge('flood', ['--log-level', 'info'], {
      env: { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=131072' },
    });
    if (!(await started(b))) return;
    try {
      await floodChecks(b, cfg.db);
    } finally {
      await b.stop();
    }
  },

  // search_path trojans against the normal build and the one-layer test builds
  async trojan() {
    const db = `${cfg.db}_trojan`;
    psqlSync('postgres', `CREATE DATABASE ${db}`);
    psqlSync(db, 'CREATE EXTENSION sse_bridge');
    const psql = new Psql(db);
    const hostile = "options='-c search_path=public,pg_catalog'";
    try {
      await plantTrojans(psql, db);
      // default: the role's own search_path ("$user", public), as in the README setup
      const builds = [['default', cfg.bin, false], ['normal', cfg.bin, false], ['nopin', cfg.variants.nopin, false],
        ['unqual', cfg.variants.unqual, false], ['bare', cfg.variants.bare, true]];
      for (const [name, bin, expectLoot] of builds) {
        if (!bin) {
          check(`trojan/${name}: test build available`, false, 'not built (make bridge-variants)');
          continue;
        }
        const b = new Bridge(`trojan-${name}`, { bin, db, conninfo: name === 'default' ? '' : hostile, tmp: cfg.tmp, pidfile: cfg.pidfile,
          args: ['--public-channels', 'pub.#', '--touch-interval', '1', '--log-level', 'info'] });
        bridges.push(b);
        if (!(await started(b))) continue;
        await trojanRun(name, b, psql, { expectLoot });
      }
    } finally {
      await psql.close();
      psqlSync('postgres', `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  },

  async wire() {
    const b = await main();
    if (!b) return;
    const psql = new Psql(cfg.db);
    try {
      await wireChecks(b, psql, MAX_HEAD);
    } finally {
      await psql.close();
    }
    const mc = bridge('maxclients', ['--public-channels', 'pub.#', '--max-clients', '3']);
    if (!(await started(mc))) return;
    await maxClientsChecks(mc, 3);
    await mc.stop();
  },

  async inject() {
    const b = await main();
    if (!b) return;
    const psql = new Psql(cfg.db);
    try {
      await injectChecks(b, psql, cfg.serverLog);
    } finally {
      await psql.close();
    }
  },

  async secrecy() {
    const b = await main();
    if (!b) return;
    const psql = new Psql(cfg.db);
    try {
      await secrecyChecks(b, psql, cfg.db);
    } finally {
      await psql.close();
    }
  },

  async slowloris() {
    const b = await main();
    if (!b) return;
    const psql = new Psql(cfg.db);
    try {
      await slowlorisChecks(b, psql, 2);
    } finally {
      await psql.close();
    }
  },

  async churn() {
    // Fixed malloc thresholds: glibc otherwise raises its mmap threshold
    // (up to 32 MiB) after the first large free and then keeps freed heap
    // memory mapped, so VmRSS would swing by tens of MiB with the size of
    // the last replay page and hide (or fake) a leak. With these, blocks of
    // 64 KiB and more are mapped and unmapped individually and the heap top
    // is trimmed above 128 KiB: RSS tracks live memory.
    const b = bridge('churn', ['--public-channels', 'churn.#', '--replay-cache', '8M', '--client-queue', '512k'], {
      env: { GLIBC_TUNABLES: 'glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=131072' },
    });
    if (!(await started(b))) return;
    const pub = new Psql(cfg.db);
    const ctl = new Psql(cfg.db);
    try {
      // +2 MiB: with the thresholds above the after-minus-before noise is
      // under 0.5 MiB and does not grow with the number of cycles (10,000
      // and 40,000 cycles give the same delta); a leak of ~200 bytes per
      // cycle would exceed it
      await churnCheck('churn', b, pub, ctl, { cycles: cfg.cycles, rssTolKiB: 2048 });
    } finally {
      await pub.close();
      await ctl.close();
      await b.stop();
    }
  },

  // the hostile inputs of wire and inject again, against the sanitizer build
  async asaninput() {
    if (!cfg.asan) {
      check('hostile input under ASan: sanitizer build available', false, 'ABUSE_BRIDGE_ASAN not set');
      return;
    }
    const b = bridge('main-asan', MAIN_ARGS, { bin: cfg.asan, env: ASAN_ENV, conninfo: MAIN_CONNINFO });
    if (!(await started(b))) return;
    const psql = new Psql(cfg.db);
    label.prefix = '(ASan) ';
    try {
      await wireChecks(b, psql, MAX_HEAD);
      await injectChecks(b, psql, null);
    } finally {
      label.prefix = '';
      await psql.close();
      await asanVerdict('hostile input (ASan)', b);
    }
  },

  async asan() {
    if (!cfg.asan) {
      check('churn under ASan: sanitizer build available', false, 'ABUSE_BRIDGE_ASAN not set');
      return;
    }
    const b = bridge('churn-asan', ['--public-channels', 'churn.#', '--replay-cache', '8M', '--client-queue', '512k'], {
      bin: cfg.asan,
      env: ASAN_ENV,
    });
    if (!(await started(b))) return;
    const pub = new Psql(cfg.db);
    const ctl = new Psql(cfg.db);
    try {
      await churnCheck('churn (ASan)', b, pub, ctl, { cycles: cfg.cycles, warmup: 500, rssTolKiB: null });
    } finally {
      await pub.close();
      await ctl.close();
      await asanVerdict('churn (ASan)', b);
    }
  },
};

// ------------------------------------------------------------ driver

const order = ['trojan', 'flood', 'fdlimit', 'methods', 'filters', 'wire', 'inject', 'secrecy', 'slowloris', 'cors', 'mainstop', 'faults', 'churn', 'asan', 'asaninput'];
checks.mainstop = mainVerdict;
const want = process.argv.slice(2).length ? process.argv.slice(2) : order;

let code = 0;
for (const name of want) {
  if (!checks[name]) continue;
  const t0 = Date.now();
  note(`--- ${name}`);
  try {
    await checks[name]();
  } catch (e) {
    check(`${name}: ran to the end`, false, e.stack || String(e));
  }
  note(`--- ${name} took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
for (const b of bridges) await b.stop();
if (tally.failed) code = 1;
process.exit(code);
