// The embedded usage log: one JSON line per record, one file per UTC day
// (DATA_DIR/usage/2025-06-12.jsonl, by the request's start time). Appends go to a memory
// buffer written out by a short timer, when it grows, and at close: a crash loses at most
// the last `flushMs` of records, and no request ever waits for the disk. Old days are
// removed by deleting their files.
import { createReadStream } from "node:fs";
import { appendFile, mkdir, readdir } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { UsageRecord } from "./record.ts";
import type { UsageLog } from "./usage-log.ts";

export interface JsonlUsageLogOptions {
  /** Most time a record waits in memory. */
  flushMs?: number;
  /** Buffered records that trigger a write at once. */
  batch?: number;
  /** Records kept in memory while the disk refuses writes; past it, a failed write's records are dropped. */
  maxBuffered?: number;
  onError?: (err: unknown, dropped: number) => void;
}

const DAY_FILE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/;

interface Pending {
  lines: string;
  count: number;
}

export class JsonlUsageLog implements UsageLog {
  /** Lines not yet written, per day file, as one string each (no object per record). */
  private pending = new Map<string, Pending>();
  private count = 0;
  private writing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Day files this process has written to. */
  private readonly touched = new Set<string>();
  private readonly flushMs: number;
  private readonly batch: number;
  private readonly maxBuffered: number;

  constructor(
    private readonly dir: string,
    private readonly options: JsonlUsageLogOptions = {},
  ) {
    this.flushMs = options.flushMs ?? 1000;
    this.batch = options.batch ?? 1000;
    this.maxBuffered = options.maxBuffered ?? 100_000;
  }

  append(record: UsageRecord): void {
    const day = record.started_at.slice(0, 10);
    const line = `${JSON.stringify(record)}\n`;
    const pending = this.pending.get(day);
    if (pending) {
      pending.lines += line;
      pending.count++;
    } else this.pending.set(day, { lines: line, count: 1 });
    this.count++;
    if (this.closed || this.count >= this.batch) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      // The server keeps the process alive; a pending flush must not (close() writes it).
      this.timer.unref();
    }
  }

  /** Resolves once everything appended so far is on disk (or was given up on). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = new Map();
    this.count = 0;
    // Chained, so lines reach each file in append order.
    this.writing = this.writing.then(() => this.write(batch));
    return this.writing;
  }

  async *query(since: Date, until: Date): AsyncGenerator<UsageRecord> {
    await this.flush();
    const from = since.getTime();
    const to = until.getTime();
    const firstDay = since.toISOString().slice(0, 10);
    const lastDay = until.toISOString().slice(0, 10);
    for (const day of await this.days()) {
      if (day < firstDay || day > lastDay) continue;
      for await (const record of readDay(join(this.dir, `${day}.jsonl`), from, to)) {
        const at = Date.parse(record.started_at);
        if (at >= from && at < to) yield record;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private async days(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return names
      .map((name) => DAY_FILE.exec(name)?.[1])
      .filter((day): day is string => day !== undefined)
      .sort();
  }

  private async write(batch: Map<string, Pending>): Promise<void> {
    if (batch.size === 0) return;
    try {
      await mkdir(this.dir, { recursive: true });
      for (const [day, { lines }] of batch) {
        // A crash can leave a torn last line; starting on a fresh line keeps it from swallowing
        // the next record (readers skip the empty line this leaves otherwise).
        const lead = this.touched.has(day) ? "" : "\n";
        await appendFile(join(this.dir, `${day}.jsonl`), lead + lines);
        this.touched.add(day);
        batch.delete(day);
      }
    } catch (err) {
      this.options.onError?.(err, this.putBack(batch));
      if (!this.timer && !this.closed) {
        this.timer = setTimeout(() => void this.flush(), this.flushMs);
        this.timer.unref();
      }
    }
  }

  /**
   * Puts unwritten records back in front of newer ones for the next attempt; when that
   * would pass `maxBuffered` they are given up on instead. Returns how many were.
   */
  private putBack(unwritten: Map<string, Pending>): number {
    let count = 0;
    for (const p of unwritten.values()) count += p.count;
    if (this.count + count > this.maxBuffered) return count;
    for (const [day, p] of unwritten) {
      const newer = this.pending.get(day);
      this.pending.set(day, newer ? { lines: p.lines + newer.lines, count: p.count + newer.count } : p);
    }
    this.count += count;
    return 0;
  }
}

/** Where a line's start time begins: records are written with it second, after a request id that holds no quote. */
const STARTED_AT = '"started_at":"';

/**
 * The records of one day file; a torn or foreign line (crash mid-write) is skipped. A line
 * whose start time is outside [from, to) is skipped before it is parsed: a dashboard asking
 * for the last hour every few seconds reads the day's file without parsing all of it.
 */
async function* readDay(file: string, from: number, to: number): AsyncGenerator<UsageRecord> {
  const lines = createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    if (line.trim() === "") continue;
    const i = line.indexOf(STARTED_AT);
    if (i >= 0) {
      const at = Date.parse(line.slice(i + STARTED_AT.length, i + STARTED_AT.length + 24));
      if (at < from || at >= to) continue;
    }
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch {
      continue;
    }
    const parsed = UsageRecord.safeParse(json);
    if (parsed.success) yield parsed.data;
  }
}
