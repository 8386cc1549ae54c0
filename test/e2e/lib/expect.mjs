// Comparisons between what a client received and what the database holds.
import assert from 'node:assert/strict';

// What a WHATWG parser rebuilds from a payload: SSE cannot carry CR, the
// bridge splits on CRLF, CR and LF, and the client joins lines with LF.
export function wire(data) {
  return data.replace(/\r\n|\r/g, '\n');
}

function short(e) {
  return `${e.id}:${e.event}:${JSON.stringify(e.data).slice(0, 60)}`;
}

// received: [{id, event, data}] in arrival order; rows: database rows in id
// order. Equal when ids, event names and payloads match one for one.
export function assertSameEvents(received, rows, label = 'events') {
  const want = rows.map((r) => ({ id: String(r.id), event: r.event ?? 'message', data: wire(r.data) }));
  const got = received.map((e) => ({ id: String(e.id), event: e.event, data: e.data }));
  const problems = [];
  const seen = new Map();
  for (const g of got) seen.set(g.id, (seen.get(g.id) || 0) + 1);
  const dups = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  if (dups.length) problems.push(`duplicated ids: ${dups.slice(0, 10).join(',')}`);
  const wantIds = new Set(want.map((w) => w.id));
  const missing = want.filter((w) => !seen.has(w.id)).map((w) => w.id);
  if (missing.length) problems.push(`missing ids (${missing.length}): ${missing.slice(0, 10).join(',')}`);
  const extra = got.filter((g) => !wantIds.has(g.id)).map((g) => g.id);
  if (extra.length) problems.push(`unexpected ids (${extra.length}): ${extra.slice(0, 10).join(',')}`);
  if (!problems.length) {
    for (let i = 0; i < want.length; i++) {
      const w = want[i];
      const g = got[i];
      if (g.id !== w.id) {
        problems.push(`order differs at #${i}: got id ${g.id}, want ${w.id}`);
        break;
      }
      if (g.event !== w.event || g.data !== w.data) {
        problems.push(`event ${w.id} differs:\n      got  ${short(g)}\n      want ${short(w)}`);
        break;
      }
    }
  }
  if (problems.length) {
    assert.fail(`${label}: ${problems.join('; ')}\n    received ${got.length}, database ${want.length}` +
      `\n    got:  ${got.slice(0, 8).map(short).join(' | ')}\n    want: ${want.slice(0, 8).map(short).join(' | ')}`);
  }
}

// The head id announced by `event: ready` (its data is JSON with the head).
export function readyHead(ev) {
  let v;
  try {
    v = JSON.parse(ev.data);
  } catch {
    assert.fail(`ready data is not JSON: ${JSON.stringify(ev.data)}`);
  }
  if (typeof v === 'number') return v;
  assert.ok(v && typeof v === 'object', `ready data is not an object: ${ev.data}`);
  const key = Object.keys(v).find((k) => /head/i.test(k));
  assert.ok(key, `ready data has no head id: ${ev.data}`);
  const n = Number(v[key]);
  assert.ok(Number.isInteger(n) && n >= 0, `ready head is not an id: ${ev.data}`);
  return n;
}

// A 4xx/5xx answer: the status, a JSON body {"error":..., "detail":...}
// and never a stream.
export function assertJsonError(res, status, what = '') {
  const ctx = `${what} -> ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`;
  assert.equal(res.status, status, `status for ${ctx}`);
  assert.ok(!(res.headers['content-type'] || '').startsWith('text/event-stream'), `error answered with a stream: ${ctx}`);
  let body;
  try {
    body = JSON.parse(res.body);
  } catch {
    assert.fail(`error body is not JSON: ${ctx}`);
  }
  assert.ok(body && typeof body === 'object' && !Array.isArray(body), `error body is not an object: ${ctx}`);
  assert.equal(typeof body.error, 'string', `error body lacks "error": ${ctx}`);
  assert.ok(body.error.length > 0, `empty "error": ${ctx}`);
  assert.ok('detail' in body, `error body lacks "detail": ${ctx}`);
  return body;
}

// AMQP topic matching, written independently of the code under test:
// `*` is exactly one segment, `#` zero or more.
export function topicMatch(pattern, channel) {
  const p = pattern.split('.');
  const c = channel.split('.');
  const memo = new Map();
  const go = (i, j) => {
    const k = `${i},${j}`;
    if (memo.has(k)) return memo.get(k);
    let r;
    if (i === p.length) r = j === c.length;
    else if (p[i] === '#') r = go(i + 1, j) || (j < c.length && go(i, j + 1));
    else r = j < c.length && (p[i] === '*' || p[i] === c[j]) && go(i + 1, j + 1);
    memo.set(k, r);
    return r;
  };
  return go(0, 0);
}

export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of params) u.append(k, v);
  return u.toString();
}
