// Where usage records go to be queried later: JsonlUsageLog (files under DATA_DIR/usage, one
// replica) or RedisUsageLog (one stream every replica appends to and reads), chosen by
// models.yaml `usage_log`. Both buffer in memory and write in batches, so a request never
// waits for the disk or Redis.
import type { UsageRecord } from "./record.ts";

export interface UsageLog {
  /** Buffers the record; never waits for storage, never throws. */
  append(record: UsageRecord): void;
  /** Records that started in [since, until), including those not yet written out. */
  query(since: Date, until: Date): AsyncIterable<UsageRecord>;
  /**
   * Shared logs only: calls `listener` with every record other replicas append from now on,
   * checking every `everyMs`.
   */
  follow?(listener: (record: UsageRecord) => void, everyMs: number): void;
  /** Writes out what is buffered and stops the timer. */
  close(): Promise<void>;
}
