// Applies the configured per-key rate limits: counts each request of a limited key, asks the
// pure decision (rate-limit.ts) whether it is over, and answers 429 in OpenAI's shape when
// it is. Finished chat requests add their tokens afterwards.
import { ApiError } from "../openai/errors.ts";
import type { RateCounters } from "../storage/rate-counters.ts";
import { decideRateLimit, type RateLimit, windowAt } from "./rate-limit.ts";

export interface RateLimitConfig {
  /** Limits of every key not in `keys`, anonymous requests included; none when undefined. */
  default: RateLimit | undefined;
  /** By key id (`key_` + 12 hex digits of the key's sha256, as in the usage log). */
  keys: ReadonlyMap<string, RateLimit>;
}

export class RateLimiter {
  constructor(
    private readonly config: RateLimitConfig,
    private readonly counters: RateCounters,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether models.yaml gives this key id limits of its own (rate_limits.keys). */
  lists(keyId: string): boolean {
    return this.config.keys.has(keyId);
  }

  limitOf(keyId: string): RateLimit | undefined {
    return this.config.keys.get(keyId) ?? this.config.default;
  }

  /** Undefined when the request may go on (it is then counted), else the 429 to answer. */
  async admit(keyId: string): Promise<ApiError | undefined> {
    const limit = this.limitOf(keyId);
    if (limit === undefined) return undefined;
    const { index, fraction } = windowAt(this.now());
    const usage = await this.counters.hit(keyId, index);
    const decision = decideRateLimit(limit, usage, fraction);
    if (decision.allowed) return undefined;
    // A refused request is not counted: a client that waits as told gets through.
    await this.counters.add(keyId, "requests", index, -1);
    const what = decision.kind === "requests" ? "requests per min (RPM)" : "tokens per min (TPM)";
    return new ApiError(
      429,
      `Rate limit reached for ${keyId} on ${what}: Limit ${decision.limit}, Used ${decision.used}. Please try again in ${decision.retryAfterSeconds}s.`,
      { type: decision.kind, code: "rate_limit_exceeded", retryAfterSeconds: decision.retryAfterSeconds },
    );
  }

  /** Counts a finished request's tokens against its key's limit, if it has one on tokens. */
  async used(keyId: string, tokens: number): Promise<void> {
    if (tokens <= 0 || this.limitOf(keyId)?.tokensPerMinute === undefined) return;
    await this.counters.add(keyId, "tokens", windowAt(this.now()).index, tokens);
  }

  close(): Promise<void> {
    return this.counters.close();
  }
}
