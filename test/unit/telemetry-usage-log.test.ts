import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { JsonlUsageLog } from "../../src/telemetry/jsonl-usage-log.ts";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import { usageRecord } from "../helpers/usage-record.ts";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "usage-log-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const record = (id: string, startedAt: string): UsageRecord => usageRecord({ request_id: id, started_at: startedAt });

async function ids(log: JsonlUsageLog, since: string, until: string): Promise<string[]> {
  const out: string[] = [];
  for await (const r of log.query(new Date(since), new Date(until))) out.push(r.request_id);
  return out;
}

describe("JsonlUsageLog", () => {
  it("answers queries with records not yet written, and writes one file per UTC day", async () => {
    const log = new JsonlUsageLog(dir, { flushMs: 60_000 });
    log.append(record("a", "2025-06-11T23:59:59.000Z"));
    log.append(record("b", "2025-06-12T00:00:01.000Z"));
    log.append(record("c", "2025-06-12T12:00:00.000Z"));
    expect(readdirSync(dir)).toEqual([]);
    expect(await ids(log, "2025-06-11T00:00:00Z", "2025-06-13T00:00:00Z")).toEqual(["a", "b", "c"]);
    expect(readdirSync(dir).sort()).toEqual(["2025-06-11.jsonl", "2025-06-12.jsonl"]);
    expect(await ids(log, "2025-06-12T00:00:00Z", "2025-06-12T12:00:00Z")).toEqual(["b"]);
    await log.close();
  });

  it("reads a range of a day to the millisecond, since included, until not, out of order as written", async () => {
    const log = new JsonlUsageLog(dir, { flushMs: 60_000 });
    for (const [id, at] of [
      ["late", "2025-06-12T10:00:00.000Z"],
      ["first", "2025-06-12T09:00:00.000Z"],
      ["before", "2025-06-12T08:59:59.999Z"],
      ["last", "2025-06-12T09:59:59.999Z"],
      ["mid", "2025-06-12T09:30:00.000Z"],
    ] as const) {
      log.append(record(id, at));
    }
    await log.close();
    expect(await ids(log, "2025-06-12T09:00:00Z", "2025-06-12T10:00:00Z")).toEqual(["first", "last", "mid"]);
  });

  it("writes on its timer without anyone asking", async () => {
    const log = new JsonlUsageLog(dir, { flushMs: 20 });
    log.append(record("a", "2025-06-12T08:00:00.000Z"));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(readFileSync(join(dir, "2025-06-12.jsonl"), "utf8")).toContain('"request_id":"a"');
    await log.close();
  });

  it("writes at once when the buffer reaches a batch", async () => {
    const log = new JsonlUsageLog(dir, { flushMs: 60_000, batch: 2 });
    log.append(record("a", "2025-06-12T08:00:00.000Z"));
    log.append(record("b", "2025-06-12T08:00:01.000Z"));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFileSync(join(dir, "2025-06-12.jsonl"), "utf8").match(/request_id/g)).toHaveLength(2);
    await log.close();
  });

  it("keeps records across a restart, and a torn line from a crash costs only itself", async () => {
    const first = new JsonlUsageLog(dir);
    first.append(record("a", "2025-06-12T08:00:00.000Z"));
    await first.close();
    appendFileSync(join(dir, "2025-06-12.jsonl"), '{"request_id":"torn","star');
    writeFileSync(join(dir, "notes.txt"), "not a day file");

    const second = new JsonlUsageLog(dir);
    second.append(record("b", "2025-06-12T09:00:00.000Z"));
    expect(await ids(second, "2025-06-12T00:00:00Z", "2025-06-13T00:00:00Z")).toEqual(["a", "b"]);
    await second.close();
  });

  it("keeps records in memory while the disk refuses them, within a bound", async () => {
    const blocked = join(dir, "usage");
    writeFileSync(blocked, "a file where the folder should be");
    const errors: number[] = [];
    const log = new JsonlUsageLog(blocked, {
      flushMs: 60_000,
      maxBuffered: 4,
      onError: (_err, dropped) => errors.push(dropped),
    });
    for (const id of ["a", "b"]) log.append(record(id, "2025-06-12T08:00:00.000Z"));
    await log.flush();
    expect(errors).toEqual([0]);
    for (const id of ["c", "d"]) log.append(record(id, "2025-06-12T08:00:00.000Z"));
    await log.flush();
    expect(errors).toEqual([0, 0]);
    log.append(record("e", "2025-06-12T08:00:00.000Z"));
    await log.flush();
    // Past the bound the failed records are given up on, and counted.
    expect(errors).toEqual([0, 0, 5]);
    rmSync(blocked);
    log.append(record("f", "2025-06-12T08:00:00.000Z"));
    expect(await ids(log, "2025-06-12T00:00:00Z", "2025-06-13T00:00:00Z")).toEqual(["f"]);
    await log.close();
  });
});
