// SIGTERM / SIGINT: stop accepting, end the streams cleanly, exit 0 in 5 s.
import assert from 'node:assert/strict';
import { test } from '../lib/harness.mjs';
import { uniq } from '../lib/env.mjs';
import { publish } from '../lib/db.mjs';
import { curlStream, cStream, esStream, request } from '../lib/clients.mjs';
import { startBridge } from '../lib/bridge.mjs';

async function shutdownCase(t, signal) {
  const b = await startBridge(['--public-channels', 'pub.#'], { name: `shutdown-${signal}` });
  t.defer(() => b.stop('SIGKILL', { expectZero: false }));
  t.note(`log: ${b.logPath}`);
  const ch = `pub.${uniq()}.term`;
  const url = `${b.url}/events?channel=${ch}`;
  const curl = curlStream(url);
  const c = cStream(url);
  const es = esStream(url);
  for (const x of [curl, c, es]) t.defer(x.close);
  for (const x of [curl, c, es]) await x.waitReady();
  await publish([{ channel: ch, data: 'one' }]);
  for (const x of [curl, c, es]) await x.waitFor((r) => r.rows().length >= 1, 'an event');
  const st = await b.stop(signal, { graceMs: 5000 });
  t.note(`exited in ${st.ms} ms`);
  assert.equal(st.code, 0);
  await curl.waitEnded(5000);
  assert.equal(curl.exit.code, 0, `curl: the stream did not end cleanly: ${JSON.stringify(curl.exit)} ${curl.log.join(' ')}`);
  await c.waitEnded(5000);
  assert.equal(c.eofs, 1);
  assert.equal(c.exitReason, 'eof');
  await es.waitFor((r) => r.errors.length >= 1, 'EventSource to notice the end', 5000);
  await assert.rejects(request(`${b.url}/healthz`, { timeoutMs: 2000 }), 'still accepting after exit');
}

test('SIGTERM: streams end cleanly and the bridge exits 0 within 5 s', (t) => shutdownCase(t, 'SIGTERM'));
test('SIGINT: streams end cleanly and the bridge exits 0 within 5 s', (t) => shutdownCase(t, 'SIGINT'));
