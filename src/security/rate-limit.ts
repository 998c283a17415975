// Per-key rate limits (requests and tokens per minute) as a pure decision over window
// counts. The counts live in a store (src/storage/rate-counters.ts: memory, or Redis shared
// by replicas); this file only decides whether a request is over its limit and how long
// the client should wait.
//
// The window is a sliding minute approximated from two fixed ones: what the previous
// minute counted, weighted by how much of it still overlaps the last 60 s, plus what this
// minute counted so far. Two counters per key and kind are all a replica has to share, and
// a burst at a minute's boundary cannot pass twice the limit as with fixed windows.

export const WINDOW_MS = 60_000;

export interface RateLimit {
  requestsPerMinute?: number | undefined;
  /** Prompt + completion tokens of finished chat requests. */
  tokensPerMinute?: number | undefined;
}

export interface WindowCounts {
  previous: number;
  current: number;
}

/** Counts of one key in the window this request falls in and the one before it. */
export interface RateUsage {
  /** Includes the request being decided. */
  requests: WindowCounts;
  tokens: WindowCounts;
}

export type RateDecision =
  | { allowed: true }
  | {
      allowed: false;
      kind: "requests" | "tokens";
      limit: number;
      /** The sliding-window estimate, rounded up. */
      used: number;
      retryAfterSeconds: number;
    };

/** Which fixed window `now` falls in, and how far into it (0 ≤ fraction < 1). */
export function windowAt(now: number): { index: number; fraction: number } {
  const index = Math.floor(now / WINDOW_MS);
  return { index, fraction: (now - index * WINDOW_MS) / WINDOW_MS };
}

/**
 * A request is allowed while the sliding count of requests (this one included) is within
 * requests_per_minute, and at least one token of tokens_per_minute is left. A request's
 * tokens are only known once it has run, so the token limit refuses the requests after the
 * one that spent it, as OpenAI's does once its estimate is spent.
 */
export function decideRateLimit(limit: RateLimit, usage: RateUsage, fraction: number): RateDecision {
  const checks = [
    // What was counted before this request; it costs one more request, and needs one token.
    {
      kind: "requests" as const,
      max: limit.requestsPerMinute,
      before: { ...usage.requests, current: usage.requests.current - 1 },
    },
    { kind: "tokens" as const, max: limit.tokensPerMinute, before: usage.tokens },
  ];
  for (const { kind, max, before } of checks) {
    if (max === undefined) continue;
    const used = estimate(before, fraction);
    if (used + 1 > max) {
      return {
        allowed: false,
        kind,
        limit: max,
        used: Math.ceil(used),
        retryAfterSeconds: waitSeconds(before, fraction, max - 1),
      };
    }
  }
  return { allowed: true };
}

function estimate(c: WindowCounts, fraction: number): number {
  return c.previous * (1 - fraction) + c.current;
}

/**
 * Seconds until the estimate falls to `room` with no new traffic: within this window if the
 * previous window fading is enough, else once this window is over and enough of its count
 * has faded in turn. Rounded up (a hair more at whole seconds, against rounding in the
 * estimate) and at least 1, so a client that waits as told is let through.
 */
function waitSeconds(c: WindowCounts, fraction: number, room: number): number {
  let windows: number;
  if (c.current <= room && c.previous > 0) {
    // previous × (1 − f′) + current ≤ room  ⇔  f′ ≥ 1 − (room − current) / previous
    windows = Math.max(0, 1 - (room - c.current) / c.previous - fraction);
  } else {
    // Next window: current × (1 − g) ≤ room  ⇔  g ≥ 1 − room / current
    windows = 1 - fraction + Math.max(0, c.current > 0 ? 1 - room / c.current : 0);
  }
  return Math.max(1, Math.ceil((windows * WINDOW_MS) / 1000 + 1e-6));
}
