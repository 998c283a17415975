// The response cache's storage: Keyv over a bounded in-process LRU (default) or Redis
// (shared by replicas, each keeping a local copy of what it read: local-copy.ts). Every
// call is bounded in time and never throws: a slow or dead Redis turns into misses, warned
// about once per outage, and caching resumes by itself when Redis answers again.
import KeyvRedis from "@keyv/redis";
import { Keyv } from "keyv";
import { LRUCache } from "lru-cache";
import type { Logger } from "pino";
import type { CachedCompletion } from "./entry.ts";
import { entrySize, LocalCopy, purgePrefix } from "./local-copy.ts";

export interface CacheStoreOptions {
  store: "memory" | "redis";
  url?: string | undefined;
  ttlMs: number;
  maxEntries: number;
  maxBytes: number;
  /** store: redis — keep a local copy of the entries read, kept right by Redis's invalidations. */
  localCopy: boolean;
  /** Longest a lookup may wait before it counts as a miss. */
  timeoutMs: number;
}

export type Lookup = { result: "hit"; entry: CachedCompletion } | { result: "miss" } | { result: "error" };

const NAMESPACE = "roundhouse:cache";

export class ResponseCache {
  private degraded = false;

  private constructor(
    private readonly keyv: Keyv<CachedCompletion>,
    private readonly purgeKeys: (prefix: string) => Promise<number>,
    private readonly options: CacheStoreOptions,
    /** Bound on reads and writes; undefined for the in-process store. */
    private readonly timeoutMs: number | undefined,
    private readonly logger: Logger,
    private readonly closeStore: () => Promise<void>,
    private readonly local?: LocalCopy,
  ) {}

  static create(options: CacheStoreOptions, logger: Logger): ResponseCache {
    if (options.store === "redis") {
      const adapter = new KeyvRedis<CachedCompletion>(
        {
          url: options.url ?? "redis://127.0.0.1:6379",
          // Fail fast while disconnected instead of queueing commands behind a dead socket.
          disableOfflineQueue: true,
          socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
          // Client tracking: Redis pushes an invalidation for every key this connection read
          // once it changes. node-redis turns tracking on again in each reconnect's handshake.
          ...(options.localCopy ? { RESP: 3, emitInvalidate: true } : {}),
        },
        { throwOnConnectError: false, throwOnErrors: true, namespace: NAMESPACE },
      );
      const local = options.localCopy
        ? trackedCopy(adapter.client as unknown as TrackingClient, options, logger)
        : undefined;
      const keyv = new Keyv<CachedCompletion>({
        store: adapter,
        namespace: NAMESPACE,
        useKeyPrefix: false,
        throwOnErrors: true,
        // Native JSON both ways. Keyv's default walks every value in JS to write and parses
        // with a reviver to read (so Buffers round-trip; entries hold none), which made a
        // lookup of a long answer with logprobs 3-4 times dearer (bench/cache.ts). Its colon
        // escaping is gone too, so cache keys carry a format version (key.ts).
        serialize: JSON.stringify,
        deserialize: JSON.parse,
      });
      keyv.on("error", () => {
        // Reported per call (and once per outage) by `guard`.
      });
      const purge = async (prefix: string) => {
        const client = adapter.client as unknown as RedisScanClient;
        let removed = 0;
        for await (const keys of client.scanIterator({ MATCH: `${NAMESPACE}::${prefix}*`, COUNT: 500 })) {
          const batch = Array.isArray(keys) ? keys : [keys];
          if (batch.length > 0) removed += await client.unlink(batch);
        }
        return removed;
      };
      return new ResponseCache(keyv, purge, options, options.timeoutMs, logger, () => adapter.disconnect(), local);
    }
    const lru = new LRUCache<string, object>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      sizeCalculation: entrySize,
    });
    // Keyv hands Map-like stores its ttl as a third argument, which LRUCache reads as an
    // options object; Keyv enforces the ttl itself, so pass only key and value.
    const store = {
      get: (key: string) => lru.get(key),
      set: (key: string, value: object) => lru.set(key, value),
      delete: (key: string) => lru.delete(key),
      has: (key: string) => lru.has(key),
      clear: () => lru.clear(),
    };
    // No serialising: the LRU holds the entry objects themselves, so a hit parses nothing.
    // A hit shares its entry with every later hit; replay only reads it (CachedCompletion is readonly).
    const keyv = new Keyv<CachedCompletion>({
      store,
      namespace: NAMESPACE,
      throwOnErrors: true,
      serialize: undefined,
      deserialize: undefined,
    });
    const purge = async (prefix: string) => purgePrefix(lru, `${NAMESPACE}:${prefix}`);
    // An in-process lookup cannot hang, so it gets no timer.
    return new ResponseCache(keyv, purge, options, undefined, logger, async () => {});
  }

  async get(key: string): Promise<Lookup> {
    const copy = this.local?.get(key);
    if (copy !== undefined) return { result: "hit", entry: copy };
    const ticket = this.local?.ticket();
    const entry = await this.guard("read", () => this.keyv.get(key));
    if (entry === FAILED) return { result: "error" };
    // Redis is shared: anything but an entry of this format is a miss, never a reply.
    if (entry?.v !== 1 || !Array.isArray(entry.events)) return { result: "miss" };
    if (ticket !== undefined) this.local?.keep(key, entry, ticket, entry.storedAt + this.options.ttlMs);
    return { result: "hit", entry };
  }

  /** Fire and forget: the response never waits for the cache write. */
  set(key: string, entry: CachedCompletion): void {
    void this.guard("write", () => this.keyv.set(key, entry, this.options.ttlMs));
  }

  /** Removes every entry, or a model's entries; returns how many went. */
  async purge(modelId?: string): Promise<number> {
    const prefix = modelId === undefined ? "" : `${modelId}:`;
    // Other replicas drop their copies when Redis tells them the keys went; this one at once.
    this.local?.purge(prefix);
    const removed = await this.guard("purge", () => this.purgeKeys(prefix), 10_000);
    return removed === FAILED ? 0 : removed;
  }

  async close(): Promise<void> {
    await this.closeStore().catch(() => {});
  }

  private async guard<T>(what: string, op: () => Promise<T>, timeoutMs = this.timeoutMs): Promise<T | typeof FAILED> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const result =
        timeoutMs === undefined
          ? await op()
          : await Promise.race([
              op(),
              new Promise<never>((_, reject) => {
                timer = setTimeout(
                  () => reject(new Error(`cache ${what} took longer than ${timeoutMs} ms`)),
                  timeoutMs,
                );
              }),
            ]);
      if (this.degraded) {
        this.degraded = false;
        this.logger.info({ store: this.options.store }, "response cache is back");
      }
      return result;
    } catch (err) {
      if (!this.degraded) {
        this.degraded = true;
        this.logger.warn(
          { store: this.options.store, err: (err as Error).message },
          "response cache unavailable; serving misses",
        );
      }
      return FAILED;
    } finally {
      clearTimeout(timer);
    }
  }
}

const FAILED = Symbol("cache-failed");

/** A local copy fed by the Redis connection's invalidations, used only while it is up. */
function trackedCopy(client: TrackingClient, options: CacheStoreOptions, logger: Logger): LocalCopy {
  const local = new LocalCopy({
    maxEntries: options.maxEntries,
    maxBytes: options.maxBytes,
    tracking: () => client.isReady,
  });
  const keyPrefix = `${NAMESPACE}::`;
  client.on("invalidate", (key: unknown) => {
    // null: Redis flushed the database.
    if (key === null) return local.invalidate(null);
    const name = String(key);
    if (name.startsWith(keyPrefix)) local.invalidate(name.slice(keyPrefix.length));
  });
  // Invalidations sent while the connection was down are lost: start over from empty.
  for (const event of ["ready", "error", "end"]) client.on(event, () => local.invalidate(null));
  // Before Redis 6 the connection's handshake (HELLO 3) fails, every time, as it does where an
  // ACL denies CLIENT TRACKING: say what to change.
  let told = false;
  client.on("error", (err: unknown) => {
    if (told || !/\bHELLO\b|tracking/i.test(String((err as Error | undefined)?.message))) return;
    told = true;
    logger.error(
      { store: "redis", err: (err as Error).message },
      "this Redis refuses RESP3 or client tracking, which the cache's local copy needs (Redis 6 or later, CLIENT TRACKING allowed); set cache.local_copy: false to use it without one. Until then every lookup is a miss.",
    );
  });
  return local;
}

/** What the local copy needs of a node-redis client created with RESP 3 and emitInvalidate. */
interface TrackingClient {
  readonly isReady: boolean;
  on(event: string, listener: (arg: unknown) => void): unknown;
}

/** The two node-redis calls purge needs (the adapter's client type is a wide union). */
interface RedisScanClient {
  scanIterator(options: { MATCH: string; COUNT: number }): AsyncIterable<string[] | string>;
  unlink(keys: string[]): Promise<number>;
}
