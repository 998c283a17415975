// The usage log replicas share: one Redis stream, one entry per request with two fields,
// `replica` (the process that served it) and `record` (the UsageRecord as JSON). Every
// replica appends to it and reads all of it, so /admin/usage, experiment results and the
// rollback windows cover the whole fleet's traffic.
//
// Writing never touches the request path: append() serializes the record into a bounded
// in-memory queue (DropOldestQueue) and returns; a timer, or a full batch, sends the queue
// as XADDs with MAXLEN ~ (a Lua loop, one call per batch) so the stream keeps about
// `maxRecords` entries. While Redis is down, writes stop being attempted except on a slow
// retry timer, the queue keeps the newest `maxBuffered` records, every record dropped to make
// room is reported through `dropped` (a counter), and the outage is logged once when it
// starts and once when it ends.
//
// Entry ids are Redis's own clock at XADD ("*"), not the record's start: a stream's ids must
// grow, and records arrive in completion order, from several replicas, some after an outage.
// A record's id therefore falls after its start (give or take clock skew between the replica
// and Redis) and normally within a request's length of it; queries read the ids of
// [since - skew, until + MAX_WRITE_DELAY_MS] and keep the records that started in range.
import { createClient } from "@keyv/redis";
import type { Logger } from "pino";
import { ApiError } from "../openai/errors.ts";
import { DropOldestQueue } from "./drop-oldest-queue.ts";
import { UsageRecord } from "./record.ts";
import type { UsageLog } from "./usage-log.ts";

export const USAGE_STREAM = "roundhouse:usage";
/** Difference tolerated between a replica's clock (started_at) and Redis's (entry ids). */
export const CLOCK_SKEW_MS = 60_000;
/**
 * Longest a record may take from its request's start to the stream (the request itself, the
 * batching, a Redis outage it was buffered through) and still be found by a query whose range
 * ends before it arrived. Queries up to now see every record whatever its delay.
 */
export const MAX_WRITE_DELAY_MS = 60 * 60_000;
/** Entries per XRANGE call: bounds the memory one page of a long query takes. */
const PAGE = 1000;
/** Longest a read may take before the query fails (reads are safe to give up on; writes are not). */
const READ_TIMEOUT_MS = 5000;
/** How long a query waits for this replica's buffered records to reach the stream first. */
const QUERY_FLUSH_WAIT_MS = 2000;
/** How long a write or read waits for a connection that is not up yet before Redis counts as down. */
const CONNECT_WAIT_MS = 1000;
/** How long close() waits for the last records to go out. */
const CLOSE_FLUSH_WAIT_MS = 2000;

/**
 * One XADD per record, MAXLEN ~ trimming, for a whole batch in one call: a command per record
 * from this process would cost several µs of CPU each (promise, encoding, reply), a Lua loop
 * costs Redis about a microsecond each and this process next to nothing. Redis caches the
 * compiled script by its hash, so sending its text with each batch costs only the bytes.
 * KEYS[1]: the stream; ARGV: max entries, replica, then the records' JSON.
 */
const XADD_ALL = `for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'replica', ARGV[2], 'record', ARGV[i])
end
return #ARGV - 2`;

export interface RedisUsageLogOptions {
  url: string;
  logger: Logger;
  /** Entries the stream keeps (approximately, MAXLEN ~); the oldest are trimmed. */
  maxRecords: number;
  /** Records kept in memory while Redis cannot take them; the oldest are dropped beyond it. */
  maxBuffered: number;
  /** Names this process in the stream, so it can tell its own records from other replicas'. */
  replica: string;
  /** Most time a record waits in memory while Redis is up. */
  flushMs?: number;
  /** Buffered records that trigger a write at once, and the most sent in one pipeline. */
  batch?: number;
  /** How often writes are retried while Redis is down. */
  retryMs?: number;
  /** Called with the number of records given up on (the buffer was full). */
  dropped?(count: number): void;
}

/** The XRANGE bounds (inclusive, in ms) holding every record that started in [since, until). */
export function streamRange(since: Date, until: Date): { start: string; end: string } {
  return {
    start: String(Math.max(0, since.getTime() - CLOCK_SKEW_MS)),
    end: String(until.getTime() + MAX_WRITE_DELAY_MS + CLOCK_SKEW_MS),
  };
}

/** A stream entry back to its replica and record; undefined when it is not one of ours. */
export function decodeEntry(
  fields: Readonly<Record<string, string>>,
): { replica: string; record: UsageRecord } | undefined {
  const { replica, record } = fields;
  if (replica === undefined || record === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(record);
  } catch {
    return undefined;
  }
  const parsed = UsageRecord.safeParse(json);
  return parsed.success ? { replica, record: parsed.data } : undefined;
}

type Client = ReturnType<typeof createClient>;
type Entry = { id: string; fields: Record<string, string> };

export class RedisUsageLog implements UsageLog {
  readonly replica: string;
  private readonly client: Client;
  private readonly buffer: DropOldestQueue<string>;
  private readonly flushMs: number;
  private readonly batch: number;
  private readonly retryMs: number;
  private readonly logger: Logger;
  /** The write in progress; one at a time, so records reach the stream in append order. */
  private draining: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private followTimer: NodeJS.Timeout | undefined;
  /** Set from the first failed write to the first one that succeeds. */
  private outage: { dropped: number } | undefined;
  private closed = false;

  constructor(private readonly options: RedisUsageLogOptions) {
    this.replica = options.replica;
    this.logger = options.logger;
    this.buffer = new DropOldestQueue(options.maxBuffered);
    this.flushMs = options.flushMs ?? 250;
    this.batch = options.batch ?? 500;
    this.retryMs = options.retryMs ?? 1000;
    this.client = createClient({
      url: options.url,
      // Fail fast while disconnected: records wait in our bounded buffer, not in the client's unbounded one.
      disableOfflineQueue: true,
      socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
    });
    // Without a listener a connection error would crash the process; outages are reported by the writes.
    this.client.on("error", () => {});
    // Retries in the background by itself until it connects (or close()).
    this.client.connect().catch(() => {});
  }

  append(record: UsageRecord): void {
    const dropped = this.buffer.push(JSON.stringify(record));
    if (dropped > 0) this.drop(dropped);
    // While Redis is down only the retry timer writes: a write per append would cost every request.
    if (!this.outage && this.buffer.length >= this.batch) void this.flush();
    else this.schedule(this.flushMs);
  }

  /** Resolves once a write attempt of what is buffered has finished (written, or kept for a retry). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      if (this.buffer.length > 0 && !this.closed) this.schedule(this.outage ? this.retryMs : this.flushMs);
    });
    return this.draining;
  }

  async *query(since: Date, until: Date): AsyncGenerator<UsageRecord> {
    // This replica's own recent records first, unless Redis is known to be down (they would not go).
    if (!this.outage) await withTimeout(this.flush(), QUERY_FLUSH_WAIT_MS).catch(() => {});
    const { start, end } = streamRange(since, until);
    const from = since.getTime();
    const to = until.getTime();
    for await (const entry of this.entries(start, end)) {
      const decoded = decodeEntry(entry.fields);
      if (!decoded) continue;
      const at = Date.parse(decoded.record.started_at);
      if (at >= from && at < to) yield decoded.record;
    }
  }

  /**
   * Calls `listener` with each record other replicas append from now on, read every
   * `everyMs`: what lets each replica's rollback rules judge the fleet's traffic. A read that
   * fails (Redis down) is retried at the next tick from where the last one ended.
   */
  follow(listener: (record: UsageRecord) => void, everyMs: number): void {
    let last: string | undefined;
    const poll = async () => {
      try {
        if (last === undefined) {
          const tail = await this.read(() => this.client.xRevRange(USAGE_STREAM, "+", "-", { COUNT: 1 }));
          last = tail[0]?.id ?? "0-0";
        }
        for await (const entry of this.entries(`(${last}`, "+")) {
          last = entry.id;
          if (entry.fields.replica === this.replica) continue;
          const decoded = decodeEntry(entry.fields);
          if (!decoded) continue;
          try {
            listener(decoded.record);
          } catch (err) {
            this.logger.error({ err }, "a usage record listener failed");
          }
        }
      } catch {
        // Redis is down: the writer reports the outage; the next tick resumes after `last`.
      }
      if (!this.closed) {
        this.followTimer = setTimeout(() => void poll(), everyMs);
        this.followTimer.unref();
      }
    };
    void poll();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.followTimer);
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buffer.length > 0 || this.draining) {
      await withTimeout(this.flush(), CLOSE_FLUSH_WAIT_MS).catch(() => {});
    }
    if (this.buffer.length > 0) {
      this.logger.warn({ lost: this.buffer.length }, "usage log (redis): records not written before shutdown");
    }
    this.client.destroy();
  }

  private schedule(ms: number): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => void this.flush(), ms);
    // The server keeps the process alive; a pending write must not (close() sends it).
    this.timer.unref();
  }

  private async drain(): Promise<void> {
    while (this.buffer.length > 0) {
      // Just started (or reconnecting): give the connection a moment before calling it an outage.
      if (!this.client.isReady && !this.outage) await this.connected(CONNECT_WAIT_MS);
      if (!this.client.isReady) {
        this.failed(new Error("not connected"));
        return;
      }
      const batch = this.buffer.take(this.batch);
      try {
        await this.client.eval(XADD_ALL, {
          keys: [USAGE_STREAM],
          arguments: [String(this.options.maxRecords), this.replica, ...batch],
        });
      } catch (err) {
        // Not written (or, if the connection died after Redis ran it, written: a retry may then
        // duplicate the batch, which is the price of never losing one silently).
        const dropped = this.buffer.putBack(batch);
        if (dropped > 0) this.drop(dropped);
        this.failed(err);
        return;
      }
      this.recovered();
    }
  }

  private failed(err: unknown): void {
    if (this.outage) return;
    this.outage = { dropped: 0 };
    this.logger.warn(
      {
        err: err instanceof Error ? err.message : String(err),
        buffered: this.buffer.length,
        max: this.buffer.capacity,
      },
      "usage log (redis) unavailable: keeping records in memory, the oldest dropped beyond usage_log.max_buffered",
    );
  }

  private recovered(): void {
    if (!this.outage) return;
    this.logger.info({ dropped: this.outage.dropped }, "usage log (redis) is back: buffered records written");
    this.outage = undefined;
  }

  private drop(count: number): void {
    if (this.outage) this.outage.dropped += count;
    this.options.dropped?.(count);
  }

  /** Stream entries with ids in [start, end] (XRANGE syntax), a page at a time. */
  private async *entries(start: string, end: string): AsyncGenerator<Entry> {
    let from = start;
    for (;;) {
      let page: Entry[];
      try {
        const reply = await this.read(() => this.client.xRange(USAGE_STREAM, from, end, { COUNT: PAGE }));
        page = reply.map((e) => ({ id: String(e.id), fields: e.message as Record<string, string> }));
      } catch {
        throw new ApiError(503, "The usage log (Redis) is unavailable right now; try again shortly.", {
          type: "server_error",
          code: "usage_log_unavailable",
          retryAfterSeconds: 1,
        });
      }
      for (const entry of page) yield entry;
      const last = page.at(-1);
      if (page.length < PAGE || !last) return;
      from = `(${last.id}`;
    }
  }

  private async read<T>(op: () => Promise<T>): Promise<T> {
    if (!this.client.isReady && !this.outage) await this.connected(CONNECT_WAIT_MS);
    if (!this.client.isReady) throw new Error("usage log (redis) is not connected");
    return withTimeout(op(), READ_TIMEOUT_MS);
  }

  /** Resolves when the client is ready or `ms` have passed, whichever comes first. */
  private connected(ms: number): Promise<void> {
    if (this.client.isReady) return Promise.resolve();
    return withTimeout(new Promise<void>((resolve) => this.client.once("ready", () => resolve())), ms).catch(() => {});
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`took longer than ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
