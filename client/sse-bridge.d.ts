// Types for sse-bridge.js (served by the bridge at /sse-bridge.js).

export type SseState = 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface SseStats {
  /** failures since the last `ready` (0 while live) */
  failures: number;
  /** failures since the start */
  totalFailures: number;
  /** reopens of a new EventSource after EventSource gave up */
  reopens: number;
  /** events delivered to handlers (ready and reset not counted) */
  events: number;
  /** events dropped because their numeric id was not above the last one seen */
  duplicates: number;
  /** calls of the `refresh` hook (token expired or refused) */
  refreshes: number;
}

/** Why the stream stopped by itself: 204 after sse_close, or a 4xx. */
export interface SseStopError {
  status: number;
  /** Retry-After in ms, 0 when absent */
  retryAfter: number;
}

/**
 * The `reset` event's data.  Without `timeline`: ids lost_from..lost_through
 * were pruned before they were seen; the stream goes on after lost_through.
 * With `timeline: true`: the log was replaced (restore, recovery, failover);
 * events held with ids from lost_from on belong to another timeline and are
 * void; the stream goes on after lost_from - 1 (the reset's id).
 */
export interface SseReset {
  lost_from: number;
  lost_through: number;
  timeline?: boolean;
}

export interface SseBridgeOptions {
  /**
   * channel patterns of an ad hoc stream ('news.#', 'job.*'), appended to the
   * URL as `channel` parameters, encoded by the helper (never write %23)
   */
  channels?: readonly string[] | string;
  /** a JSON containment filter ({"state":"done"}), appended as the encoded `filter` parameter */
  filter?: Record<string, unknown> | string;
  /** the stream's URL when the options are the only argument (default '/events') */
  url?: string | URL;
  /** send cookies (EventSource withCredentials; credentials: 'include' for the probe) */
  withCredentials?: boolean;
  /** resume after this position, "<id>-<fingerprint>" or a plain id (sent as the lastEventId query parameter) */
  lastEventId?: string | number | null;
  /** first backoff of a reopen, ms (default 1000) */
  minDelay?: number;
  /** backoff ceiling, ms (default 30000) */
  maxDelay?: number;
  /** failures in a row left to EventSource's own retry (default 3) */
  nativeRetries?: number;
  /** ms allowed for the status probe (default 10000) */
  probeTimeout?: number;
  /**
   * a JWT sent as the access_token query parameter (the bridge must run
   * with --jwt-query on); not needed when the token is in a cookie
   */
  token?: string;
  /**
   * called when the token expired (`auth-expired`, why = 'expired') or was
   * refused (401, why = 'unauthorized'): renew the cookie, or return a new
   * token; the stream then resumes from the last id.  Throwing stops the
   * stream with status 401; a second 401 before the next `ready` too.
   */
  refresh?: (why: 'expired' | 'unauthorized') => void | string | Promise<void | string>;
  onState?: (state: SseState, stats: SseStats) => void;
  onReset?: (lost: SseReset) => void;
  /** stopped for good: error is null after close() */
  onClose?: (error: SseStopError | null) => void;
}

export declare class SseBridge {
  /**
   * url: '/events/<subscription id>', or '/events' with `channels` (and
   * `filter`) in the options.  A '#' written in a URL string is sent as %23.
   */
  constructor(url: string | URL, options?: SseBridgeOptions);
  /** the options alone: the URL is options.url, default '/events' */
  constructor(options: SseBridgeOptions);
  readonly url: string | URL;
  readonly state: SseState;
  /** the position of the last event delivered (or of `ready`/`reset`), "<id>-<fingerprint>" */
  readonly lastEventId: string | null;
  readonly stats: SseStats;
  readonly error: SseStopError | null;
  /** resolves with the first `ready` event's data ({head}); rejects if it stops first */
  readonly ready: Promise<{ head: number }>;
  /** listen to a named event ('message' for unnamed events) */
  on(type: string, handler: (e: MessageEvent<string>) => void): this;
  /** stop for good */
  close(): void;
}

export declare const STATES: readonly SseState[];
export default SseBridge;
