// A replica's own copy of the Redis entries it has read, so that a repeated hit skips the
// round trip to Redis (and the two wake-ups it costs). Redis keeps it right: the connection
// reads with client tracking on (RESP3), so Redis tells this replica whenever an entry it
// read is overwritten, purged or expires. An entry copy never outlives what Redis would serve.
//
// Written here rather than taken from node-redis's own client-side cache: that one bounds
// entries by count only and keeps the raw string, so every hit would parse it again; this
// one keeps the parsed entry, bounded in entries and bytes like the memory store.
import { LRUCache } from "lru-cache";
import type { CachedCompletion } from "./entry.ts";

export interface LocalCopyOptions {
  maxEntries: number;
  maxBytes: number;
  /** Whether invalidations are reaching this replica now (the tracking connection is up). */
  tracking: () => boolean;
}

export class LocalCopy {
  private readonly entries: LRUCache<string, CachedCompletion>;
  /** Bumped by every invalidation: a read that saw one while in flight keeps no copy. */
  private invalidations = 0;

  constructor(private readonly options: LocalCopyOptions) {
    this.entries = new LRUCache<string, CachedCompletion>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      sizeCalculation: entrySize,
    });
  }

  /** The copy of an entry, only while invalidations reach this replica. */
  get(key: string): CachedCompletion | undefined {
    return this.options.tracking() ? this.entries.get(key) : undefined;
  }

  /** Taken just before reading Redis, and handed back to `keep` with what was read. */
  ticket(): number {
    return this.invalidations;
  }

  /**
   * Keeps an entry read from Redis, unless an invalidation arrived while it was read: then
   * it may already be stale. Redis sends an invalidation after the reply of the read it
   * concerns: node-redis reports one that came in the same packet before this runs (replies
   * settle promises, invalidations are emitted while the packet is decoded), and a later one
   * deletes the copy kept here.
   */
  keep(key: string, entry: CachedCompletion, ticket: number, expiresAt: number): void {
    const ttl = expiresAt - Date.now();
    if (ticket !== this.invalidations || ttl <= 0 || !this.options.tracking()) return;
    this.entries.set(key, entry, { ttl });
  }

  /** A key Redis says changed, or null for all of them (a flush, or a lost connection). */
  invalidate(key: string | null): void {
    this.invalidations++;
    if (key === null) this.entries.clear();
    else this.entries.delete(key);
  }

  /** Drops the copies whose keys start with a prefix; returns how many went. */
  purge(prefix: string): number {
    this.invalidations++;
    return purgePrefix(this.entries, prefix);
  }
}

// The two LRU helpers below serve the memory store (store.ts) too.

/** An entry's JSON length stands in for its size (computed once, when it is kept). */
export function entrySize(entry: object): number {
  return Math.max(1, JSON.stringify(entry).length);
}

/** Deletes an LRU's keys that start with a prefix; returns how many went. */
export function purgePrefix<V extends object>(lru: LRUCache<string, V>, prefix: string): number {
  let removed = 0;
  for (const key of [...lru.keys()]) {
    if (key.startsWith(prefix) && lru.delete(key)) removed++;
  }
  return removed;
}
