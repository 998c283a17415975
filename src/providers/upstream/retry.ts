// When to send a failed upstream request again: a pure function of the attempt, the
// configured backoff and what the upstream asked for (Retry-After).

/** Longest single wait: past it, failing over (or failing) serves the client better than waiting. */
export const MAX_RETRY_DELAY_MS = 10_000;

export interface RetryInput {
  /** Attempts made so far (1 after the first failure). */
  attempt: number;
  /** Retries allowed after the first attempt. */
  retries: number;
  /** Wait before the first retry; doubles with each further one. */
  backoffMs: number;
  /** The failed response's Retry-After (seconds or an HTTP date), if any. */
  retryAfter?: string | undefined;
  now: number;
  /** In [0, 1): spreads retries of many requests so they do not arrive together. */
  random: number;
}

/** Milliseconds to wait before the next attempt, or undefined to give up now. */
export function retryDelayMs(input: RetryInput): number | undefined {
  if (input.attempt > input.retries) return undefined;
  const asked = retryAfterMs(input.retryAfter, input.now);
  if (asked !== undefined) return asked <= MAX_RETRY_DELAY_MS ? asked : undefined;
  const exponential = Math.min(MAX_RETRY_DELAY_MS, input.backoffMs * 2 ** (input.attempt - 1));
  // "Equal jitter": at least half the backoff, so retries never bunch up at zero.
  return exponential / 2 + (exponential / 2) * input.random;
}

/** Retry-After as milliseconds from `now`: delta-seconds or an HTTP date; undefined when unreadable. */
export function retryAfterMs(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
