// sse-bridge.js - a small EventSource wrapper for sse-bridge streams.
// No dependencies; served by the bridge at /sse-bridge.js.
//
//   import { SseBridge } from '/sse-bridge.js';
//   const s = new SseBridge('/events', {
//     channels: ['job.#'],                        // encoded here: never write %23
//     filter: { state: 'done' },                  // JSON containment, encoded here
//     onState: (state, stats) => show(state),   // connecting | live | reconnecting | closed
//     onReset: (lost) => reloadEverything(),     // history was pruned or replaced: reload
//   });
//   s.on('update', (e) => render(JSON.parse(e.data)));
//   await s.ready;                                // first `ready`: live from here
//
// The first argument is the stream's URL: '/events/<subscription id>', or
// '/events' with `channels` and `filter` in the options, which the helper
// appends as query parameters (encodeURIComponent, so '#' is sent as %23).
// A URL string is also taken as written, except that a '#' in it (which a
// browser would treat as the start of a fragment, never sent) is sent as
// %23. An object as the first argument is the options, with url '/events'.
//
// What it adds to EventSource:
// - a state with a callback, and counts of failures;
// - recovery from the answers that make EventSource give up for good (any
//   non-200 status, e.g. a proxy's 502): it asks the server what the status
//   was (a fetch probe, since EventSource cannot see it), then reopens with
//   the last id in the lastEventId query parameter, after a backoff with
//   jitter, or after Retry-After on a 503;
// - ids are positions "<id>-<fingerprint>" (a plain "<id>" is accepted);
//   events whose numeric id is at or below the last one seen are dropped,
//   so its own reopens never deliver an event twice; `ready` and `reset`
//   re-base the position (after a timeline reset the stream goes on below
//   the last id: {lost_from, lost_through, timeline: true});
// - a 204 (the stream's channel was closed with sse_close) or another 4xx
//   stops it for good; close() too;
// - tokens (docs/auth.md): `token` is sent as the access_token parameter
//   (the bridge needs --jwt-query on; a cookie needs no option here), and
//   on `auth-expired` or a 401 the `refresh` hook is called: it may renew
//   the cookie, or return a new token; then the stream resumes from the
//   last id, so nothing is lost.  A 401 right after a refresh stops it.

const STATES = ['connecting', 'live', 'reconnecting', 'closed'];
const OWN = ['ready', 'reset', 'close', 'auth-expired']; // always listened to

// The numeric part of a position "<id>-<fp>" or "<id>", as a BigInt; null
// when id is not a position.
function idNumber(id) {
  const m = /^([0-9]{1,19})(?:-(?:0|[0-9a-f]{8}))?$/.exec(String(id));
  return m ? BigInt(m[1]) : null;
}

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return {};
  }
}

// The stream's URL: `url` with every '#' sent as %23 (a fragment is never
// sent to a server), then one channel parameter per pattern of `channels`
// and the filter object as JSON.
function streamBase(url, channels, filter) {
  let u = url instanceof URL ? url.href : String(url);
  u = u.replace(/#/g, '%23');
  const params = [];
  if (channels != null) {
    const list = typeof channels === 'string' ? [channels] : Array.from(channels);
    for (const c of list) params.push(`channel=${encodeURIComponent(String(c))}`);
  }
  if (filter != null) {
    params.push(`filter=${encodeURIComponent(typeof filter === 'string' ? filter : JSON.stringify(filter))}`);
  }
  if (params.length === 0) return u;
  return u + (u.includes('?') ? (/[?&]$/.test(u) ? '' : '&') : '?') + params.join('&');
}

export class SseBridge {
  constructor(url, options = {}) {
    if (url != null && typeof url === 'object' && !(url instanceof URL)) {
      options = url;
      url = options.url ?? '/events';
    }
    this.url = url;
    this._base = streamBase(url, options.channels, options.filter);
    this.options = {
      withCredentials: false,
      minDelay: 1000, // first backoff of its own reopens, ms
      maxDelay: 30000, // backoff ceiling, ms
      nativeRetries: 3, // failures left to EventSource's own retry before backing off
      probeTimeout: 10000, // ms
      ...options,
    };
    this.state = 'connecting';
    this.lastEventId = options.lastEventId != null ? String(options.lastEventId) : null;
    this.stats = { failures: 0, totalFailures: 0, reopens: 0, events: 0, duplicates: 0, refreshes: 0 };
    this.error = null; // set when stopped by a status: {status, retryAfter}
    this._token = options.token != null ? String(options.token) : null;
    this._refreshing = false;
    this._refreshed = false; // a refresh happened since the last `ready`
    this._handlers = new Map();
    this._es = null;
    this._timer = null;
    this._probe = null;
    this._gen = 0;
    this._sawClose = false; // the last event was `close`
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // rejected only when it stops before ready
    this._open();
  }

  // Listen to a named event (or 'message' for unnamed ones). handler(e)
  // gets the MessageEvent; returns this.
  on(type, handler) {
    if (!this._handlers.has(type)) {
      this._handlers.set(type, []);
      if (this._es && !OWN.includes(type)) this._listen(this._es, type);
    }
    this._handlers.get(type).push(handler);
    return this;
  }

  // Stop for good.
  close() {
    this._stop(null);
  }

  // ---- internals

  _setState(state) {
    if (this.state === state || this.state === 'closed') return;
    this.state = state;
    if (this.options.onState) this.options.onState(state, { ...this.stats });
  }

  _streamUrl() {
    const u = new URL(this._base, globalThis.location ? globalThis.location.href : undefined);
    if (this.lastEventId != null) u.searchParams.set('lastEventId', this.lastEventId);
    if (this._token) u.searchParams.set('access_token', this._token);
    return u.href;
  }

  _open() {
    const gen = ++this._gen;
    const es = new EventSource(this._streamUrl(), { withCredentials: !!this.options.withCredentials });
    this._es = es;
    for (const type of new Set([...OWN, ...this._handlers.keys()])) this._listen(es, type);
    es.onerror = () => gen === this._gen && this._onError(es);
  }

  _listen(es, type) {
    es.addEventListener(type, (e) => {
      if (es === this._es) this._dispatch(type, e);
    });
  }

  _dispatch(type, e) {
    const id = e.lastEventId;
    this._sawClose = type === 'close';
    if (type === 'auth-expired') {
      this._refresh('expired');
      for (const h of this._handlers.get(type) || []) h(e);
      return;
    }
    if (type === 'ready') {
      this._rebase(id);
      this.stats.failures = 0;
      this._refreshed = false;
      this._setState('live');
      this._resolveReady(parse(e.data));
    } else if (type === 'reset') {
      this._rebase(id);
      if (this.options.onReset) this.options.onReset(parse(e.data));
    } else if (id !== '' && this.lastEventId != null && !this._after(id)) {
      this.stats.duplicates++;
      return;
    } else {
      this._advance(id);
      this.stats.events++;
    }
    for (const h of this._handlers.get(type) || []) h(e);
  }

  _after(id) {
    const a = idNumber(id);
    const b = idNumber(this.lastEventId);
    return a == null || b == null || a > b; // not a position: not ours to judge
  }

  _advance(id) {
    if (id !== '' && (this.lastEventId == null || this._after(id))) this.lastEventId = id;
  }

  // `ready` and `reset` name the position the stream goes on from, even
  // when it is below the last id (a timeline reset).
  _rebase(id) {
    if (id !== '') this.lastEventId = id;
  }

  _onError(es) {
    if (this.state === 'closed') return;
    if (this._sawClose) {
      // a stream that sent `close` and ended: ask at once whether it is
      // finished for good (204) rather than waiting to reconnect
      this._sawClose = false;
      es.close();
      this._gen++;
      this._probeAndReopen();
      return;
    }
    const fatal = es.readyState === EventSource.CLOSED;
    this.stats.failures++;
    this.stats.totalFailures++;
    this._setState('reconnecting');
    if (!fatal && this.stats.failures <= this.options.nativeRetries) {
      return; // EventSource retries by itself, with Last-Event-ID
    }
    es.close();
    this._gen++;
    if (fatal) this._probeAndReopen();
    else this._later(this._backoff(0)); // many failures in a row: back off
  }

  // EventSource gave up: learn the status with a request that is aborted
  // as soon as its head arrives.
  _probeAndReopen() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), this.options.probeTimeout);
    this._probe = ctl;
    fetch(this._streamUrl(), {
      headers: { Accept: 'text/event-stream' },
      credentials: this.options.withCredentials ? 'include' : 'same-origin',
      cache: 'no-store',
      signal: ctl.signal,
    }).then((res) => {
      clearTimeout(timer);
      ctl.abort();
      if (this.state === 'closed') return;
      const retryAfter = parseRetryAfter(res.headers.get('Retry-After'));
      if (res.status === 401 && this.options.refresh && !this._refreshed) {
        this._refresh('unauthorized');
      } else if (res.status === 204 || (res.status >= 400 && res.status < 500 &&
          res.status !== 408 && res.status !== 429)) {
        this._stop({ status: res.status, retryAfter });
      } else if (res.status === 200 && this.stats.failures <= 1) {
        this._later(0); // a passing failure: reopen now
      } else {
        this._later(this._backoff(retryAfter)); // also a 200 that EventSource refused
      }
    }, () => {
      clearTimeout(timer);
      if (this.state !== 'closed') this._later(this._backoff(0));
    });
  }

  // The token expired (`auth-expired`) or was refused (401): close the
  // stream, let the hook renew the cookie or return a new token, and
  // reopen from the last id.  Without a hook the reopen meets the 401 and
  // stops.  A hook that throws stops the stream with status 401.
  _refresh(why) {
    if (this._refreshing || this.state === 'closed') return;
    this._refreshing = true;
    this._refreshed = true;
    if (this._es) this._es.close();
    this._gen++;
    this._setState('reconnecting');
    const hook = this.options.refresh;
    Promise.resolve(hook ? hook(why) : undefined).then((t) => {
      this._refreshing = false;
      if (this.state === 'closed') return;
      if (typeof t === 'string' && t !== '') this._token = t;
      this.stats.refreshes++;
      this.stats.reopens++;
      this._open();
    }, () => {
      this._refreshing = false;
      this._stop({ status: 401, retryAfter: 0 });
    });
  }

  // Delay before reopening: exponential in the failures beyond those left
  // to EventSource, at least Retry-After, with jitter (half to full, or
  // Retry-After plus up to half).
  _backoff(retryAfterMs) {
    const n = Math.min(Math.max(0, this.stats.failures - this.options.nativeRetries - 1), 16);
    const base = Math.min(this.options.maxDelay, this.options.minDelay * 2 ** n);
    const jittered = base / 2 + Math.random() * base / 2;
    return retryAfterMs > 0 ? retryAfterMs + Math.random() * base / 2 : jittered;
  }

  _later(ms) {
    clearTimeout(this._timer);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this.state === 'closed') return;
      this.stats.reopens++;
      this._open();
    }, ms);
  }

  _stop(error) {
    if (this.state === 'closed') return;
    this.error = error;
    clearTimeout(this._timer);
    this._timer = null;
    if (this._probe) this._probe.abort();
    if (this._es) this._es.close();
    this._gen++;
    this._setState('closed');
    this._rejectReady(new Error(error ? `stream stopped: status ${error.status}` : 'closed'));
    if (this.options.onClose) this.options.onClose(error);
  }
}

function parseRetryAfter(v) {
  if (v == null) return 0;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? 0 : Math.max(0, t - Date.now());
}

export { STATES };
export default SseBridge;
