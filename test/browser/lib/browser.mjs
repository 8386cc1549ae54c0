// Debian's Chromium driven by puppeteer-core (never a downloaded browser),
// pages with the helper loaded, a screenshot of every open page when a test
// fails, and nginx with a throwaway TLS certificate.
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { test } from '../../e2e/lib/harness.mjs';
import { ENV, recordPid, tmpPath } from '../../e2e/lib/env.mjs';
import { freePort, poll, sleep } from '../../e2e/lib/bridge.mjs';
import { sql, publishSql } from '../../e2e/lib/db.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = process.env.BROWSER_SHOTS || join(ENV.here, '..', 'browser', 'build');
mkdirSync(SHOTS, { recursive: true });

let browser = null;

export async function launch() {
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    acceptInsecureCerts: true, // the throwaway certificate of the nginx tests
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--ignore-certificate-errors', '--no-first-run'],
  });
  recordPid(browser.process().pid);
  return browser;
}

export async function shutdown() {
  if (browser) await browser.close();
  browser = null;
}

// A browser test: pages opened with t.page() are screenshot (path printed)
// when the test fails, and closed when it ends.
export function btest(name, fn, { timeout = 90_000 } = {}) {
  test(name, async (t) => {
    const pages = [];
    t.page = async (url) => {
      const page = await browser.newPage();
      pages.push(page);
      page.on('pageerror', (err) => t.note(`page error: ${err.message}`));
      if (url) await page.goto(url, { waitUntil: 'load' });
      return page;
    };
    t.defer(async () => {
      for (const p of pages) await p.close().catch(() => {});
    });
    let timer;
    try {
      await Promise.race([
        fn(t),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`test timed out after ${(timeout - 5000) / 1000}s`)), timeout - 5000);
        }),
      ]);
    } catch (err) {
      for (const [i, p] of pages.entries()) {
        const file = join(SHOTS, `fail-${name.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60)}-${i}.png`);
        try {
          await p.screenshot({ path: file, fullPage: true });
          console.log(`    screenshot: ${file}`);
        } catch (e) {
          console.log(`    screenshot failed: ${e.message}`);
        }
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }, { timeout });
}

// In-page recorder: T[name] follows one SseBridge (helper) or EventSource.
export const PAGE_LIB = `
window.T = {};
// the numeric part of a position "<id>-<fingerprint>" (compared with log rows)
const idNum = (id) => String(id).replace(/-(?:0|[0-9a-f]{8})$/, '');
window.openHelper = async (name, url, opts = {}, types = ['message']) => {
  const { SseBridge } = await import('/sse-bridge.js');
  const rec = { kind: 'helper', events: [], states: [], resets: [], closes: [], ready: null, readyError: null };
  const all = {
    ...opts,
    onState: (st, stats) => rec.states.push({ st, stats, t: Date.now() }),
    onReset: (r) => rec.resets.push(r),
    onClose: (e) => rec.closes.push(e),
  };
  // url null: the options alone (new SseBridge({channels, ...}))
  rec.s = url == null ? new SseBridge(all) : new SseBridge(url, all);
  for (const type of types) rec.s.on(type, (e) => rec.events.push({ id: idNum(e.lastEventId), pos: e.lastEventId, event: e.type, data: e.data }));
  rec.s.ready.then((r) => { rec.ready = r; }, (e) => { rec.readyError = String(e); });
  window.T[name] = rec;
  return rec.s.state;
};
window.openPlain = (name, url, types = ['message']) => {
  const rec = { kind: 'plain', events: [], errors: [], errorTimes: [], gaveUp: false, opens: 0, readyAt: null };
  const es = new EventSource(url);
  es.onopen = () => rec.opens++;
  es.onerror = () => {
    rec.errors.push(es.readyState);
    rec.errorTimes.push(Date.now());
    if (es.readyState === 2) rec.gaveUp = true;
  };
  for (const type of types) es.addEventListener(type, (e) => rec.events.push({ id: idNum(e.lastEventId), pos: e.lastEventId, event: e.type, data: e.data }));
  es.addEventListener('ready', () => { rec.ready = true; rec.readyAt = rec.readyAt || Date.now(); });
  rec.es = es;
  window.T[name] = rec;
};
window.snap = (name) => {
  const r = window.T[name];
  if (r.kind === 'plain') return { events: r.events, errors: r.errors, errorTimes: r.errorTimes, gaveUp: r.gaveUp, opens: r.opens,
                                   ready: !!r.ready, readyAt: r.readyAt, readyState: r.es.readyState };
  return { events: r.events, states: r.states, resets: r.resets, closes: r.closes, ready: r.ready, readyError: r.readyError,
           state: r.s.state, stats: { ...r.s.stats }, lastEventId: r.s.lastEventId, error: r.s.error };
};
`;

// A page on the bridge's origin (its helper file, shown as text) with the
// recorder installed.
export async function helperPage(t, baseUrl) {
  const page = await t.page(`${baseUrl}/sse-bridge.js`);
  await page.evaluate(PAGE_LIB);
  await page.evaluate(() => import('/sse-bridge.js')); // loaded while the bridge is up
  return page;
}

export function snap(page, name) {
  return page.evaluate((n) => window.snap(n), name);
}

export async function waitSnap(page, name, pred, what, timeoutMs = 20_000) {
  let last;
  try {
    return await poll(async () => {
      last = await snap(page, name);
      return pred(last) ? last : null;
    }, what, { timeoutMs, everyMs: 100 });
  } catch (err) {
    err.message += `\n    last: ${JSON.stringify(last, (k, v) => (k === 'events' && Array.isArray(v) ? `${v.length} events` : v)).slice(0, 600)}`;
    throw err;
  }
}

// Publish numbered events on channel until stop(); each call of psql is a
// few autocommit transactions. Returns {stop(): Promise<number published>}.
export function publisher(channel, { batch = 4, pauseMs = 10 } = {}) {
  let n = 0;
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      const stmts = [];
      for (let i = 0; i < batch; i++) stmts.push(publishSql(channel, { n: n++ }, null, { asJson: true }));
      await sql(stmts.join('\n'));
      await sleep(pauseMs);
    }
    return n;
  })();
  return {
    count: () => n,
    stop: async () => {
      stopping = true;
      return loop;
    },
  };
}

// ------------------------------------------------------------------ nginx

// nginx (TLS, HTTP/2) with deploy/nginx.conf included in its server block,
// the upstream address replaced by the bridge's. Returns {url, port, log, stop}.
export async function startNginx(bridgePort, { name = 'nginx' } = {}) {
  const dir = tmpPath(name);
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const shipped = readFileSync(join(ENV.here, '..', '..', 'deploy', 'nginx.conf'), 'utf8');
  writeFileSync(join(dir, 'sse-bridge.conf'), shipped.replaceAll('127.0.0.1:8080', `127.0.0.1:${bridgePort}`));
  const port = await freePort();
  const t = join(dir, 'tmp');
  writeFileSync(join(dir, 'nginx.conf'), `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${t}; proxy_temp_path ${t}; fastcgi_temp_path ${t}; uwsgi_temp_path ${t}; scgi_temp_path ${t};
  server {
    listen 127.0.0.1:${port} ssl http2;
    ssl_certificate ${dir}/cert.pem;
    ssl_certificate_key ${dir}/key.pem;
    include ${dir}/sse-bridge.conf;
  }
}
`);
  const fd = openSync(join(dir, 'stderr.log'), 'a');
  const proc = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off; user root;'],
    { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  recordPid(proc.pid);
  const exited = new Promise((r) => proc.once('exit', r));
  const url = `https://localhost:${port}`;
  await poll(async () => {
    if (proc.exitCode !== null) throw new Error(`nginx exited: ${readFileSync(join(dir, 'stderr.log'), 'utf8')}`);
    try {
      execFileSync('curl', ['-sk', '-o', '/dev/null', `${url}/sse-bridge.d.ts`], { timeout: 2000 });
      return true;
    } catch {
      return false;
    }
  }, `nginx on port ${port}`);
  return {
    url,
    port,
    dir,
    accessLog: () => readFileSync(join(dir, 'access.log'), 'utf8'),
    stop: async () => {
      if (proc.exitCode === null) proc.kill('SIGQUIT');
      await Promise.race([exited, sleep(5000)]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
    },
  };
}
