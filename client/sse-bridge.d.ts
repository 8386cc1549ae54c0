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
  /** events dropped because their id was not above the last one seen */
  duplicates: number;
}

/** Why the stream stopped by itself: 204 after sse_close, or a 4xx. */
export interface SseStopError {
  status: number;
  /** Retry-After in ms, 0 when absent */
  retryAfter: number;
}

/** The `reset` event's data: these ids were pruned before they were seen. */
export interface SseReset {
  lost_from: number;
  lost_through: number;
}

export interface SseBridgeOptions {
  /** send cookies (EventSource withCredentials; credentials: 'include' for the probe) */
  withCredentials?: boolean;
  /** resume after this id (sent as the lastEventId query parameter) */
  lastEventId?: string | number | null;
  /** first backoff of a reopen, ms (default 1000) */
  minDelay?: number;
  /** backoff ceiling, ms (default 30000) */
  maxDelay?: number;
  /** failures in a row left to EventSource's own retry (default 3) */
  nativeRetries?: number;
  /** ms allowed for the status probe (default 10000) */
  probeTimeout?: number;
  onState?: (state: SseState, stats: SseStats) => void;
  onReset?: (lost: SseReset) => void;
  /** stopped for good: error is null after close() */
  onClose?: (error: SseStopError | null) => void;
}

export declare class SseBridge {
  constructor(url: string | URL, options?: SseBridgeOptions);
  readonly url: string | URL;
  readonly state: SseState;
  /** the id of the last event delivered (or of `ready`/`reset`) */
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
