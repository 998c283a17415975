// Where the rate limiter's per-minute counters live: this process's memory (one replica), or
// Redis so every replica counts against the same limit. A thin adapter: the decision is
// src/security/rate-limit.ts. Counters are ephemeral (two minutes at most) and a limit is
// a guard, not a ledger: when Redis is down or slow the counting goes on in memory, and
// shared counting resumes by itself when Redis is back, so an outage never fails a request.
import { createClient } from "@keyv/redis";
import type { Logger } from "pino";
import { type RateUsage, WINDOW_MS } from "../security/rate-limit.ts";

export type RateKind = "requests" | "tokens";

export interface RateCounters {
  /** Counts one request of `subject` in window `index`; the counts of it and the window before, this request included. */
  hit(subject: string, index: number): Promise<RateUsage>;
  /** Adds `amount` (negative to take a refused request back) to a counter of window `index`. */
  add(subject: string, kind: RateKind, index: number, amount: number): Promise<void>;
  close(): Promise<void>;
}

/** Counters of all subjects together; past it a new window starts from an empty map. */
const MAX_MEMORY_COUNTERS = 100_000;

export class MemoryRateCounters implements RateCounters {
  private readonly counts = new Map<string, number>();
  private latest = 0;

  async hit(subject: string, index: number): Promise<RateUsage> {
    // Synchronous up to here: concurrent requests each see the ones counted before them.
    this.count(subject, "requests", index, 1);
    return this.usage(subject, index);
  }

  async add(subject: string, kind: RateKind, index: number, amount: number): Promise<void> {
    this.count(subject, kind, index, amount);
  }

  async close(): Promise<void> {
    this.counts.clear();
  }

  usage(subject: string, index: number): RateUsage {
    const get = (kind: RateKind, i: number) => this.counts.get(key(subject, kind, i)) ?? 0;
    return {
      requests: { previous: get("requests", index - 1), current: get("requests", index) },
      tokens: { previous: get("tokens", index - 1), current: get("tokens", index) },
    };
  }

  count(subject: string, kind: RateKind, index: number, amount: number): void {
    if (index > this.latest) this.prune(index);
    const k = key(subject, kind, index);
    this.counts.set(k, Math.max(0, (this.counts.get(k) ?? 0) + amount));
  }

  /** Only the current and previous windows matter; subjects are bounded too (bearer tokens are client input). */
  private prune(index: number): void {
    this.latest = index;
    if (this.counts.size > MAX_MEMORY_COUNTERS) this.counts.clear();
    for (const k of this.counts.keys()) {
      if (Number(k.slice(k.lastIndexOf("\0") + 1)) < index - 1) this.counts.delete(k);
    }
  }
}

function key(subject: string, kind: RateKind, index: number): string {
  return `${kind}\0${subject}\0${index}`;
}

const PREFIX = "roundhouse:rate:";
/** A limiter in front of every request may not add more than this to one: past it, count locally. */
const REDIS_TIMEOUT_MS = 250;
/** After a failed call, count locally this long before trying Redis again. */
const RETRY_MS = 1000;

export class RedisRateCounters implements RateCounters {
  private readonly client: ReturnType<typeof createClient>;
  /** Counts while Redis cannot be reached. */
  private readonly local = new MemoryRateCounters();
  private down = false;
  private retryAt = 0;

  constructor(
    url: string,
    private readonly logger: Logger,
  ) {
    this.client = createClient({
      url,
      // Fail at once while disconnected rather than queue: the request would wait on it.
      disableOfflineQueue: true,
      socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
    });
    this.client.on("error", (err: Error) => this.wentDown(err));
    this.client.on("ready", () => {
      this.retryAt = 0;
    });
    // Retries in the background by itself until it connects (or close()).
    this.client.connect().catch(() => {});
  }

  async hit(subject: string, index: number): Promise<RateUsage> {
    if (!this.usable()) return this.local.hit(subject, index);
    const current = redisKey(subject, "requests", index);
    try {
      const replies = await this.bounded(
        this.client
          .multi()
          .incr(current)
          .pExpire(current, 2 * WINDOW_MS)
          .mGet([
            redisKey(subject, "requests", index - 1),
            redisKey(subject, "tokens", index - 1),
            redisKey(subject, "tokens", index),
          ])
          .exec(),
      );
      const [requests, , others] = replies as unknown as [number, unknown, (string | null)[]];
      this.wentUp();
      return {
        requests: { previous: Number(others[0] ?? 0), current: Number(requests) },
        tokens: { previous: Number(others[1] ?? 0), current: Number(others[2] ?? 0) },
      };
    } catch (err) {
      this.wentDown(err);
      return this.local.hit(subject, index);
    }
  }

  async add(subject: string, kind: RateKind, index: number, amount: number): Promise<void> {
    if (!this.usable()) return this.local.add(subject, kind, index, amount);
    const k = redisKey(subject, kind, index);
    try {
      await this.bounded(
        this.client
          .multi()
          .incrBy(k, amount)
          .pExpire(k, 2 * WINDOW_MS)
          .exec(),
      );
      this.wentUp();
    } catch (err) {
      this.wentDown(err);
      await this.local.add(subject, kind, index, amount);
    }
  }

  async close(): Promise<void> {
    try {
      await this.client.close();
    } catch {
      // Never connected, or already gone: nothing to release.
    }
  }

  private usable(): boolean {
    return this.client.isReady && Date.now() >= this.retryAt;
  }

  private wentUp(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.info("rate limit counters (redis) are back; counting is shared again");
  }

  private wentDown(err: unknown): void {
    this.retryAt = Date.now() + RETRY_MS;
    if (this.down) return;
    this.down = true;
    this.logger.warn(
      { err: err instanceof Error ? err.message : String(err) },
      "rate limit counters (redis) unavailable; counting in this process until it is back",
    );
  }

  private async bounded<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`redis took longer than ${REDIS_TIMEOUT_MS} ms`)), REDIS_TIMEOUT_MS);
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

function redisKey(subject: string, kind: RateKind, index: number): string {
  return `${PREFIX}${kind}:${subject}:${index}`;
}
