// Database access through psql (asynchronous, so that the event loop keeps
// serving the in-process EventSource clients while a query runs).
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { ENV } from './env.mjs';

// Run SQL text through psql (stdin), return stdout. ON_ERROR_STOP is on:
// any SQL error rejects with psql's stderr.
export function sql(text, { db = ENV.db, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', db, '-f', '-'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out = [];
    const err = [];
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`psql timed out: ${text.slice(0, 200)}`));
    }, timeoutMs);
    p.stdout.on('data', (b) => out.push(b));
    p.stderr.on('data', (b) => err.push(b));
    p.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      const stderr = Buffer.concat(err).toString();
      if (code !== 0) reject(new Error(`psql failed (${code}): ${stderr.trim()}\n  sql: ${text.slice(0, 300)}`));
      else resolve(Buffer.concat(out).toString());
    });
    p.stdin.on('error', () => {});
    p.stdin.end(text);
  });
}

// A SQL string literal for any text (standard_conforming_strings is on).
export function lit(s) {
  if (s === null || s === undefined) return 'NULL';
  return `'${String(s).replace(/'/g, "''")}'`;
}

// Run a query producing exactly one JSON value; parse it.
export async function sqlJson(query, opts) {
  const out = await sql(`SELECT (${query})::text;`, opts);
  return JSON.parse(out);
}

export async function sqlValue(query, opts) {
  return (await sql(`SELECT (${query})::text;`, opts)).replace(/\n$/, '');
}

// Head of the log, as the contract defines it.
export async function head() {
  return Number(
    await sqlValue(`greatest((SELECT max(id) FROM sse_bridge.events),
                             (SELECT pruned_through FROM sse_bridge.meta), 0)`),
  );
}

// One publish statement; data is text unless asJson.
export function publishSql(channel, data, event = null, { asJson = false } = {}) {
  const d = asJson ? `${lit(JSON.stringify(data))}::jsonb` : `${lit(data)}::text`;
  return `SELECT sse_publish(${lit(channel)}, ${d}${event ? `, ${lit(event)}` : ''});`;
}

// Publish events, each in its own transaction (autocommit), in order.
export async function publish(list) {
  await sql(list.map((e) => publishSql(e.channel, e.data, e.event, e)).join('\n'));
}

// Events of the log as {id, channel, event, data}, ids as strings.
export async function rows(where) {
  return sqlJson(`SELECT coalesce(json_agg(json_build_object(
                    'id', id::text, 'channel', channel, 'event', event, 'data', data) ORDER BY id), '[]')
                  FROM sse_bridge.events WHERE ${where}`);
}

export async function prunedThrough() {
  return Number(await sqlValue('SELECT pruned_through FROM sse_bridge.meta'));
}

// Run a command with its output in a log file, resolving on exit: pg_ctl
// start/restart leave the postmaster holding stdout/stderr, so waiting for
// the pipes to close would wait for the server to stop.
function run(cmd, args) {
  const logPath = `${ENV.tmp}/pg_ctl.log`;
  return new Promise((resolve, reject) => {
    const fd = openSync(logPath, 'a');
    const p = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    p.on('error', reject);
    p.on('exit', (code) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code}); see ${logPath}:\n${readFileSync(logPath, 'utf8').slice(-800)}`));
    });
  });
}

const serverLog = () => `${dirname(ENV.pgdata)}/server.log`;

function pgCtl(...args) {
  return run('runuser', ['-u', 'postgres', '--', `${ENV.pgbin}/pg_ctl`, '-D', ENV.pgdata, ...args]);
}

// The server restart every test environment documents.
export function restartServer() {
  return pgCtl('restart', '-m', 'fast', '-w', '-l', serverLog());
}

export function stopServer() {
  return pgCtl('stop', '-m', 'fast', '-w');
}

export function startServer() {
  return pgCtl('start', '-w', '-l', serverLog());
}

export async function serverRunning() {
  try {
    await pgCtl('status');
    return true;
  } catch {
    return false;
  }
}
