// Multi-line payloads: the bridge splits on CRLF, CR and LF, one data: line
// each, so that a WHATWG parser rebuilds the payload (line breaks as LF).
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { ENV, uniq } from '../lib/env.mjs';
import { lit, publish, rows } from '../lib/db.mjs';
import { curlStream, cStream, esStream } from '../lib/clients.mjs';
import { assertSameEvents, wire } from '../lib/expect.mjs';

const M = () => ENV.mainUrl;

const PAYLOADS = [
  'one\ntwo',
  'one\rtwo',
  'one\r\ntwo',
  'mixed\nLF\rCR\r\nCRLF\n\rLF-then-CR',
  '\nleading LF',
  '\rleading CR',
  'trailing LF\n',
  'trailing CR\r',
  'trailing CRLF\r\n',
  'blank\n\nlines\r\n\r\nbetween\r\rthem',
  '\n',
  '\r\n\r\n',
  ' leading space\n  two spaces\n\tand a tab',
  ':colon first\ndata: looks like a field\nid: 1\nevent: x\nretry: 5',
  'unicode é ü 漢字 🙂\nsecond line ✓',
  '<ul>\n  <li>html fragment</li>\r\n</ul>',
  `${'x'.repeat(70_000)}\r\n${'y'.repeat(70_000)}\n${'long line\n'.repeat(3000)}`,
];

test('multi-line data with LF, CR and CRLF rebuilt exactly by eventsource, C client and curl', async (t) => {
  const ch = `pub.${uniq()}.lines`;
  const url = `${M()}/events?channel=${ch}`;
  const clients = [esStream(url), cStream(url), curlStream(url)];
  for (const c of clients) t.defer(c.close);
  for (const c of clients) await c.waitReady();
  await publish(PAYLOADS.map((d, i) => ({ channel: ch, data: d, event: i % 3 ? 'text' : null })));
  const want = await rows(`channel = ${lit(ch)}`);
  assert.equal(want.length, PAYLOADS.length);
  want.forEach((r, i) => assert.equal(r.data, PAYLOADS[i], `the log changed payload ${i}`));
  for (const c of clients) {
    await c.waitFor((r) => r.rows().length >= want.length, `${want.length} events`);
    assertSameEvents(c.rows(), want, c.kind);
  }
  // and replayed, not only live
  const es = esStream(url, { lastEventId: Number(want[0].id) - 1 });
  t.defer(es.close);
  await es.waitReady();
  assertSameEvents(es.rows(), want, 'eventsource replay');
  // the wire carries no bare CR inside a data line
  const curl = clients[2];
  const dataLines = curl.raw.split(/\r\n|\n|\r/).filter((l) => l.startsWith('data:'));
  assert.ok(dataLines.length >= want.reduce((n, r) => n + wire(r.data).split('\n').length, 0),
    'fewer data: lines than payload lines');
});

test('payloads near the 1 MB limit, multi-byte UTF-8 across read boundaries, arrive intact', async (t) => {
  const ch = `pub.${uniq()}.big`;
  const url = `${M()}/events?channel=${ch}`;
  const clients = [esStream(url), cStream(url), curlStream(url)];
  for (const c of clients) t.defer(c.close);
  for (const c of clients) await c.waitReady();
  const big = JSON.stringify({ text: '漢字🙂é'.repeat(60_000) }); // about 660 kB of UTF-8
  const lines = Array.from({ length: 9000 }, (_, i) => `ligne ${i} — ✓`).join('\r\n');
  await publish([{ channel: ch, data: big, event: 'big' }, { channel: ch, data: lines }]);
  const want = await rows(`channel = ${lit(ch)}`);
  assert.equal(want[0].data, big, 'the log changed the payload');
  for (const c of clients) {
    await c.waitFor((r) => r.rows().length >= 2, '2 big events', 30_000);
    assertSameEvents(c.rows(), want, c.kind);
  }
});
