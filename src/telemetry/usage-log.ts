// Where usage records go to be queried later. The embedded default is JsonlUsageLog (files
// under DATA_DIR/usage). With Redis configured (cache/replicas issue) a RedisUsageLog will
// implement the same interface so every replica's records land in one place: append →
// XADD to one stream (id = the record's start time in ms, MAXLEN ~ for retention, pipelined
// from the same kind of in-memory buffer), query → XRANGE over the ids of [since, until).
import type { UsageRecord } from "./record.ts";

export interface UsageLog {
  /** Buffers the record; never waits for storage, never throws. */
  append(record: UsageRecord): void;
  /** Records that started in [since, until), including those not yet written out. */
  query(since: Date, until: Date): AsyncIterable<UsageRecord>;
  /** Writes out what is buffered and stops the timer. */
  close(): Promise<void>;
}
