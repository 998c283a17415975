// The pure parts of the Redis usage log: the bounded drop-oldest buffer, the stream id range a
// query reads, and decoding entries.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DropOldestQueue } from "../../src/telemetry/drop-oldest-queue.ts";
import { CLOCK_SKEW_MS, decodeEntry, MAX_WRITE_DELAY_MS, streamRange } from "../../src/telemetry/redis-usage-log.ts";
import { usageRecord } from "../helpers/usage-record.ts";

describe("DropOldestQueue", () => {
  it("keeps the newest items up to capacity and reports what it dropped", () => {
    const q = new DropOldestQueue<number>(3);
    expect([1, 2, 3, 4, 5].map((n) => q.push(n))).toEqual([0, 0, 0, 1, 1]);
    expect(q.length).toBe(3);
    expect(q.take(10)).toEqual([3, 4, 5]);
    expect(q.length).toBe(0);
  });

  it("puts taken items back in front of newer ones, dropping the oldest of them when full", () => {
    const q = new DropOldestQueue<number>(4);
    for (const n of [1, 2, 3]) q.push(n);
    const taken = q.take(3);
    q.push(4);
    q.push(5);
    // Room for two of the three: 1 is the oldest of all, so it goes.
    expect(q.putBack(taken)).toBe(1);
    expect(q.take(10)).toEqual([2, 3, 4, 5]);
  });

  it("behaves like a list cut to its newest `capacity` items, whatever the operations", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("push" as const), n: fc.integer() }),
      fc.record({ kind: fc.constant("take" as const), n: fc.nat(6) }),
      fc.record({ kind: fc.constant("fail" as const), n: fc.nat(6) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(op, { maxLength: 60 }), (capacity, ops) => {
        const q = new DropOldestQueue<number>(capacity);
        let model: number[] = [];
        let dropped = 0;
        let modelDropped = 0;
        for (const o of ops) {
          if (o.kind === "push") {
            dropped += q.push(o.n);
            model.push(o.n);
          } else if (o.kind === "take") {
            expect(q.take(o.n)).toEqual(model.splice(0, o.n));
          } else {
            // A failed write: taken, then returned.
            dropped += q.putBack(q.take(o.n));
          }
          const excess = Math.max(0, model.length - capacity);
          modelDropped += excess;
          model = model.slice(excess);
          expect(q.length).toBe(model.length);
        }
        expect(q.take(capacity)).toEqual(model);
        expect(dropped).toBe(modelDropped);
      }),
    );
  });
});

describe("streamRange", () => {
  it("reads from before `since` by the clock skew to past `until` by the longest write delay", () => {
    const since = new Date("2026-01-01T00:00:00Z");
    const until = new Date("2026-01-02T00:00:00Z");
    expect(streamRange(since, until)).toEqual({
      start: String(since.getTime() - CLOCK_SKEW_MS),
      end: String(until.getTime() + MAX_WRITE_DELAY_MS + CLOCK_SKEW_MS),
    });
    expect(streamRange(new Date(0), new Date(0)).start).toBe("0");
  });
});

describe("decodeEntry", () => {
  const record = usageRecord();

  it("reads back what append wrote", () => {
    expect(decodeEntry({ replica: "a", record: JSON.stringify(record) })).toEqual({ replica: "a", record });
  });

  it("skips entries that are not usage records", () => {
    expect(decodeEntry({ record: JSON.stringify(record) })).toBeUndefined();
    expect(decodeEntry({ replica: "a", record: "{not json" })).toBeUndefined();
    expect(decodeEntry({ replica: "a", record: JSON.stringify({ request_id: 1 }) })).toBeUndefined();
  });
});
