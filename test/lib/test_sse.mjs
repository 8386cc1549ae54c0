// Unit tests of test/lib/sse.mjs, and of the abuse suite's streaming client
// (test/abuse/lib.mjs, Sse) that feeds it, against a local TCP server.
// Every stream is fed whole, cut in two at every position, and one
// character at a time; each way must give the same callbacks.
// Run: node test/lib/test_sse.mjs (no cluster).
import assert from 'node:assert/strict';
import net from 'node:net';
import { SseParser } from './sse.mjs';
import { Sse } from '../abuse/lib.mjs';

let failed = 0;
let passed = 0;
async function test(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}\n${e.message}`);
  }
}

// What the callbacks saw, one line each: E id|event|data, C text, R ms.
function parse(pieces) {
  const log = [];
  const p = new SseParser({
    onEvent: (e) => log.push(`E ${e.id}|${e.event}|${e.data}`),
    onComment: (t) => log.push(`C ${t}`),
    onRetry: (ms) => log.push(`R ${ms}`),
  });
  for (const s of pieces) p.feed(s);
  return { log, lastEventId: p.lastEventId };
}

function check(s, want, wantId = '') {
  const whole = parse([s]);
  assert.deepEqual(whole.log, want, 'fed whole');
  assert.equal(whole.lastEventId, wantId, 'last event id');
  for (let k = 0; k <= s.length; k++) {
    const r = parse([s.slice(0, k), s.slice(k)]);
    assert.deepEqual(r.log, want, `cut at ${k}`);
    assert.equal(r.lastEventId, wantId, `last event id, cut at ${k}`);
  }
  assert.deepEqual(parse([...s]).log, want, 'one character at a time');
}

await test('line ends: LF, CR, CRLF, mixed', () => {
  check('data: lf\n\n', ['E |message|lf']);
  check('data: cr\r\r', ['E |message|cr']);
  check('data: crlf\r\n\r\n', ['E |message|crlf']);
  check('data: a\r\ndata: b\rdata: c\n\r', ['E |message|a\nb\nc']);
  check('data: x\n\rdata: y\r\n\n', ['E |message|x', 'E |message|y']);
});

await test('fields: one space dropped, no colon, event type, unknown fields', () => {
  check('data:  two\ndata\ndata:\n\n', ['E |message| two\n\n']);
  check('event: ping\ndata: 1\n\ndata: 2\n\n', ['E |ping|1', 'E |message|2']);
  check('foo: bar\nData: no\ndata: yes\n\n', ['E |message|yes']);
  check('event: lone\n\ndata: d\n\n', ['E |message|d']);
});

await test('ids: carried over, without data, empty, with NUL, cut off', () => {
  check('id: 1\ndata: a\n\ndata: b\n\n', ['E 1|message|a', 'E 1|message|b'], '1');
  check('id: 7\n\ndata: c\n\n', ['E 7|message|c'], '7');
  check('data: a\n\nid: 9\n\n', ['E |message|a'], '9');
  check('id: 3\ndata: a\n\nid\ndata: b\n\n', ['E 3|message|a', 'E |message|b'], '');
  check('id: 3\n\nid: 4\0x\ndata: z\n\n', ['E 3|message|z'], '3');
  check('id: 1\ndata: a\n\nid: 2\ndata: b\n', ['E 1|message|a'], '1');
});

await test('comments and retry', () => {
  check(': keepalive\n\n:\ndata: x\n\n', ['C  keepalive', 'C ', 'E |message|x']);
  check('retry: 1500\nretry: 1x\nretry:\nretry: -1\ndata: r\n\n', ['R 1500', 'E |message|r']);
});

await test('BOM: one skipped at the start only', () => {
  check('\uFEFFdata: b\n\n', ['E |message|b']);
  check('\uFEFF\uFEFFdata: b\n\ndata: c\n\n', ['E |message|c']);
});

await test('a new stream does not resume from an id cut off with its event', () => {
  const log = [];
  const p = new SseParser({ onEvent: (e) => log.push(`${e.id}|${e.data}`) });
  p.feed('id: 1\ndata: a\n\nid: 2\ndata: b');
  p.begin();
  p.feed('retry: 10\n\ndata: c\n\n');
  assert.deepEqual(log, ['1|a', '1|c']);
  assert.equal(p.lastEventId, '1');
});

// The abuse suite's client, over TCP, with the body in awkward pieces.
await test('abuse Sse: CR line ends, id carry-over, no event without data, split UTF-8', async () => {
  const body = Buffer.from('retry: 5\r\rid: 1\revent: e\rdata: é\r\r: c\r\rdata: carried\r\n\r\n' +
    'id: 2\nevent: nodata\n\ndata: end\n\n');
  const srv = net.createServer((c) => {
    c.once('data', async () => {
      c.write('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n');
      for (const b of body) {
        c.write(Buffer.from([b]));
        await new Promise((r) => setImmediate(r));
      }
      c.end();
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const s = new Sse(srv.address().port, '/');
  try {
    await s.wait((x) => x.closed, 5000);
    assert.deepEqual(s.events.map((e) => `${e.id}|${e.event}|${e.data}`),
      ['1|e|é', '1|message|carried', '2|message|end']);
    assert.equal(s.comments, 1);
  } finally {
    s.close();
    srv.close();
  }
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
