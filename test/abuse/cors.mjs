// Cross-origin use and the errors a newcomer meets first:
//  - --cors-origin values that are not origins are refused at startup with
//    the reason; a trailing "/", upper case and a default port are
//    normalised; a comma-separated list is accepted;
//  - the matching origin is echoed with Vary: Origin, others get no
//    Access-Control-Allow-Origin;
//  - the helper's files are readable from any origin, with or without
//    --cors-origin;
//  - a channel pattern cut off at a "#" (a URL fragment) gets a detail
//    saying to write # as %23.
import { spawnSync } from 'node:child_process';
import { Sse, check, errorProblem, exchange, httpGet, parseResponse, show } from './lib.mjs';

const ORIGIN_FORM = 'an origin is scheme://host[:port] only';

export function corsStartupChecks(bin) {
  const cases = [
    ['http://127.0.0.1:8000/x', `"http://127.0.0.1:8000/x": has a path; ${ORIGIN_FORM}`],
    ['http://127.0.0.1:8000/?a=1', `"http://127.0.0.1:8000/?a=1": has a query; ${ORIGIN_FORM}`],
    ['http://127.0.0.1:8000#top', `"http://127.0.0.1:8000#top": has a fragment; ${ORIGIN_FORM}`],
    ['http://me:pw@127.0.0.1:8000', '"http://me:pw@127.0.0.1:8000": has user information (user@); an origin has none'],
    ['ftp://127.0.0.1', '"ftp://127.0.0.1": the scheme must be http or https'],
    ['127.0.0.1:8000', '"127.0.0.1:8000": not an origin; write scheme://host[:port], e.g. http://127.0.0.1:8000'],
    ['null', '"null": "null" is the origin of sandboxed and local pages and cannot be trusted'],
    ['http://127.0.0.1:0', '"http://127.0.0.1:0": bad port'],
    ['http://127.0.0.1:65536', '"http://127.0.0.1:65536": bad port'],
    ['http://a b', '"http://a b": bad host'],
    ['https://', '"https://": has no host'],
    ['http://a.example, *', '"*" (any origin) cannot be combined with a list of origins'],
    ['http://a.example,http://b.example/c', `"http://b.example/c": has a path; ${ORIGIN_FORM}`],
  ];
  for (const [value, why] of cases) {
    // refused before the database is reached: the conninfo is never used
    const r = spawnSync(bin, ['--cors-origin', value, '--db', 'host=/nonexistent dbname=none', '--listen', '127.0.0.1:0'], {
      encoding: 'utf8',
      timeout: 10000,
    });
    const want = `sse-bridge: invalid --cors-origin: ${why}\n`;
    check(`cors: --cors-origin ${JSON.stringify(value)} refused at startup with the reason`, r.status === 2 && r.stderr === want,
      `exit ${r.status} ${r.signal || ''}, stderr ${JSON.stringify(r.stderr)}, want ${JSON.stringify(want)}`);
  }
  const help = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  check('cors: --help describes --cors-origin as a list of origins', /--cors-origin ORIGINS\s+comma-separated origins \(scheme:\/\/host\[:port\]\)/.test(help.stdout),
    JSON.stringify((/--cors-origin.*\n.*\n/.exec(help.stdout) || [''])[0]));
}

async function head(port, target, headers = {}, method = 'GET') {
  let req = `${method} ${target} HTTP/1.1\r\nHost: t\r\n`;
  for (const [k, v] of Object.entries(headers)) req += `${k}: ${v}\r\n`;
  const ex = await exchange(port, req + '\r\n', { timeout: 3000 });
  return parseResponse(ex.buf);
}

async function streamHead(port, target, origin) {
  const s = new Sse(port, target, { headers: { Origin: origin } });
  const ok = await s.ready(5000);
  s.close();
  return ok ? s.res : null;
}

const vary = (r) => (r.get('vary') || '').split(',').map((x) => x.trim().toLowerCase()).includes('origin');

// b: a bridge started with --cors-origin 'http://127.0.0.1:8000/, HTTPS://App.Example:443, http://[::1]:08080'
export async function corsHeaderChecks(b) {
  const p = b.port;
  for (const [origin, from] of [
    ['http://127.0.0.1:8000', 'http://127.0.0.1:8000/'],
    ['https://app.example', 'HTTPS://App.Example:443'],
    ['http://[::1]:8080', 'http://[::1]:08080'],
  ]) {
    const r = await streamHead(p, '/events?channel=pub.cors', origin);
    check(`cors: a stream for Origin ${origin} (configured as ${from}) echoes it with Vary: Origin`,
      r && r.get('access-control-allow-origin') === origin && r.get('access-control-allow-credentials') === 'true' && vary(r),
      r ? show(r.head, 600) : 'no stream');
  }
  const pre = await head(p, '/events?channel=pub.cors', { Origin: 'http://127.0.0.1:8000', 'Access-Control-Request-Method': 'GET' }, 'OPTIONS');
  check('cors: the preflight for a listed origin echoes it', pre && pre.status === 204 &&
    pre.get('access-control-allow-origin') === 'http://127.0.0.1:8000' && /GET/.test(pre.get('access-control-allow-methods') || '') && vary(pre),
  pre ? show(pre.head, 600) : 'no response');
  const err = await head(p, '/events?channel=pub.', { Origin: 'https://app.example' });
  check('cors: an error for a listed origin echoes it (the page can read the reason)', err && err.status === 400 &&
    err.get('access-control-allow-origin') === 'https://app.example' && vary(err), err ? show(err.head, 600) : 'no response');
  for (const evil of ['http://evil.example', 'http://127.0.0.1:8001', 'https://127.0.0.1:8000', 'http://127.0.0.1:8000/', 'null']) {
    const r = await head(p, '/events?channel=pub.', { Origin: evil });
    check(`cors: Origin ${evil} (not listed) gets no Access-Control-Allow-Origin, and Vary: Origin`,
      r && r.get('access-control-allow-origin') === undefined && vary(r), r ? show(r.head, 600) : 'no response');
  }
  await staticChecks(p, 'with --cors-origin');
}

// The helper's files: Access-Control-Allow-Origin: * for any origin.
export async function staticChecks(p, label) {
  for (const path of ['/sse-bridge.js', '/sse-bridge.d.ts']) {
    for (const origin of [null, 'http://evil.example', 'http://127.0.0.1:8000']) {
      const r = await head(p, path, origin ? { Origin: origin } : {});
      check(`cors: ${path} ${origin ? `for Origin ${origin}` : 'without Origin'} (${label}) is readable from any origin`,
        r && r.status === 200 && r.get('access-control-allow-origin') === '*' && r.get('access-control-allow-credentials') === undefined,
        r ? show(r.head, 600) : 'no response');
    }
  }
}

// "#" starts a URL fragment: "channel=pub.job.#" arrives as "pub.job.".
export async function fragmentChecks(p) {
  const hint = (example) => `(a # and all after it are cut off as a URL fragment: write # as %23 in a URL, e.g. channel=${example}%23)`;
  for (const [target, detail] of [
    ['/events?channel=pub.job.', `bad channel pattern: has an empty segment ${hint('pub.job.')}`],
    ['/events?channel=pub.a&channel=pub.job.', `bad channel pattern: has an empty segment ${hint('pub.job.')}`],
    ['/events?channel=', `bad channel pattern: is empty ${hint('')}`],
    ['/events?channel=pub..a', 'bad channel pattern: has an empty segment'],
    ['/events?channel=pub.a%0A.', 'bad channel pattern: contains a character that is not allowed'],
  ]) {
    const { ex, res } = await httpGet(p, target);
    const prob = errorProblem(ex, [400]);
    let got = null;
    try {
      got = JSON.parse(res.body.toString('utf8'));
    } catch { /* reported below */ }
    check(`cors: ${target} -> 400 with detail ${JSON.stringify(detail)}`, !prob && got && got.error === 'bad_channel' && got.detail === detail,
      prob || show(ex.buf, 500));
  }
}
