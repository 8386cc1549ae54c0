// A small sequential test harness: one line per test ("ok - name" or
// "FAIL - name: reason"), a per-test deadline, cleanups registered with
// t.defer() that always run (and fail the test if they throw), and a JSON
// results file for run.sh to add up.
import { writeFileSync } from 'node:fs';
import { inspect } from 'node:util';

const registry = [];

export function test(name, fn, { timeout = 90_000 } = {}) {
  registry.push({ name, fn, timeout });
}

class TestContext {
  constructor(name) {
    this.name = name;
    this.cleanups = [];
    this.notes = [];
  }

  // Run fn at the end of the test, last registered first.
  defer(fn) {
    this.cleanups.push(fn);
  }

  // Extra diagnostic shown only when the test fails.
  note(msg) {
    this.notes.push(msg);
  }
}

function describe(err) {
  if (err && err.name === 'AssertionError' && err.generatedMessage === false) return err.message;
  if (err instanceof Error) {
    let s = err.message;
    if (err.name === 'AssertionError' && 'actual' in err && err.generatedMessage) {
      s += `\n    actual:   ${inspect(err.actual, { depth: 4, breakLength: 120 })}`;
      s += `\n    expected: ${inspect(err.expected, { depth: 4, breakLength: 120 })}`;
    }
    return s;
  }
  return String(err);
}

async function runOne(entry) {
  const t = new TestContext(entry.name);
  const errors = [];
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`test timed out after ${entry.timeout / 1000}s`)), entry.timeout);
  });
  try {
    await Promise.race([entry.fn(t), deadline]);
  } catch (err) {
    errors.push(describe(err));
  } finally {
    clearTimeout(timer);
  }
  for (const fn of t.cleanups.reverse()) {
    try {
      await fn();
    } catch (err) {
      errors.push(`cleanup: ${describe(err)}`);
    }
  }
  return { errors, notes: t.notes };
}

export async function runAll({ only, label, resultsFile }) {
  const selected = registry.filter((e) => !only || new RegExp(only).test(e.name));
  const results = [];
  for (const entry of selected) {
    const t0 = Date.now();
    const { errors, notes } = await runOne(entry);
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    const name = label ? `[${label}] ${entry.name}` : entry.name;
    if (errors.length === 0) {
      console.log(`ok - ${name} (${secs}s)`);
    } else {
      console.log(`FAIL - ${name} (${secs}s)`);
      for (const e of errors) console.log(`    ${e.trim().replace(/\n\s*\n/g, '\n').split('\n').join('\n    ')}`);
      for (const n of notes) console.log(`    note: ${n.split('\n').join('\n    ')}`);
    }
    results.push({ name, ok: errors.length === 0, errors });
  }
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  if (resultsFile) writeFileSync(resultsFile, JSON.stringify({ passed, failed, results }, null, 1));
  return { passed, failed };
}
