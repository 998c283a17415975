import { describe, expect, it } from "vitest";
import { AbortedError, QueueFullError, QueueTimeoutError } from "../../src/engine/errors.ts";
import { passes, pickSequences, SequenceSlots } from "../../src/engine/slots.ts";

describe("SequenceSlots", () => {
  it("hands out the lowest free ids", async () => {
    const slots = new SequenceSlots("m", 4, { maxWaiting: 1, timeoutMs: 1000 });
    expect(await slots.acquire(2)).toEqual([0, 1]);
    expect(await slots.acquire(1)).toEqual([2]);
    slots.release([0]);
    expect(await slots.acquire(1)).toEqual([0]);
    expect(slots.busy).toBe(3);
  });

  it("queues, then grants in arrival order when sequences free up", async () => {
    const slots = new SequenceSlots("m", 1, { maxWaiting: 2, timeoutMs: 1000 });
    const first = await slots.acquire(1);
    const order: string[] = [];
    const a = slots.acquire(1).then((ids) => order.push(`a${ids}`));
    const b = slots.acquire(1).then((ids) => order.push(`b${ids}`));
    expect(slots.waiting).toBe(2);
    slots.release(first);
    await a;
    slots.release([0]);
    await b;
    expect(order).toEqual(["a0", "b0"]);
  });

  it("refuses at once when the wait queue is full", async () => {
    const slots = new SequenceSlots("m", 1, { maxWaiting: 1, timeoutMs: 1000 });
    await slots.acquire(1);
    const waiting = slots.acquire(1);
    await expect(slots.acquire(1)).rejects.toBeInstanceOf(QueueFullError);
    slots.release([0]);
    await waiting;
  });

  it("gives up after the wait timeout", async () => {
    const slots = new SequenceSlots("m", 1, { maxWaiting: 1, timeoutMs: 20 });
    await slots.acquire(1);
    await expect(slots.acquire(1)).rejects.toBeInstanceOf(QueueTimeoutError);
    expect(slots.waiting).toBe(0);
  });

  it("drops a waiter whose client went away", async () => {
    const slots = new SequenceSlots("m", 1, { maxWaiting: 1, timeoutMs: 1000 });
    await slots.acquire(1);
    const abort = new AbortController();
    const waiting = slots.acquire(1, abort.signal);
    abort.abort();
    await expect(waiting).rejects.toBeInstanceOf(AbortedError);
    expect(slots.waiting).toBe(0);
  });
});

describe("pickSequences", () => {
  const c = (id: number, commonPrefix: number, lastUsed: number, held = false) => ({
    id,
    commonPrefix,
    lastUsed,
    held,
  });

  it("goes where the prompt is already held, when a sequence holds at least half of it", () => {
    expect(pickSequences([c(0, 3, 5, true), c(1, 60, 2), c(2, 0, 0)], 1, 100)).toEqual([1]);
    expect(pickSequences([c(0, 50, 5, true), c(1, 50, 2)], 1, 100)).toEqual([0]);
  });

  it("otherwise takes the least recently used, so a new conversation keeps off a live one's cache", () => {
    // Sequence 0 holds someone else's conversation (a shared template prefix only); 2 was never used.
    expect(pickSequences([c(0, 3, 5, true), c(1, 0, 2), c(2, 0, 0)], 1, 100)).toEqual([2]);
    expect(pickSequences([c(0, 3, 5, true), c(1, 0, 2), c(2, 0, 0)], 2, 100)).toEqual([2, 1]);
    // All unused: the one held, then the lowest.
    expect(pickSequences([c(3, 0, 0, true), c(1, 0, 0), c(2, 0, 0)], 1, 10)).toEqual([3]);
  });

  it("keeps the running sequences' ids consecutive before anything else, so a decode step stays one pass", () => {
    // 1 and 2 run; 4 was never used (LRU would take it), 0 and 3 extend the run.
    const free = [c(0, 0, 5), c(3, 0, 6), c(4, 0, 0), c(7, 0, 1)];
    expect(pickSequences(free, 1, 100, [1, 2])).toEqual([0]);
    // A hole in the middle is filled first: {0, 1, 3} + 2 is one run.
    expect(pickSequences([c(2, 0, 9), c(4, 0, 0), c(5, 0, 0)], 1, 100, [0, 1, 3])).toEqual([2]);
    // Several at once extend the run one after the other.
    expect(pickSequences(free, 2, 100, [1, 2])).toEqual([0, 3]);
  });

  it("copies a prompt held out of the run instead of going there, unless the model cannot copy", () => {
    // 6 holds the whole prompt but would make 0..2 and 6 two passes.
    const free = [c(3, 0, 4), c(6, 90, 2)];
    expect(pickSequences(free, 1, 100, [0, 1, 2])).toEqual([3]);
    expect(pickSequences(free, 1, 100, [0, 1, 2], false)).toEqual([6]);
    // Among sequences that keep one run, the one holding the prompt.
    expect(pickSequences([c(3, 0, 1), c(7, 90, 2)], 1, 100, [4, 5, 6])).toEqual([7]);
  });
});

describe("passes", () => {
  it("counts runs of consecutive ids", () => {
    expect(passes([])).toBe(0);
    expect(passes([0, 1, 2, 3])).toBe(1);
    expect(passes([7, 5, 2, 0])).toBe(4);
    expect(passes([3, 0, 1, 5, 6])).toBe(3);
  });
});

describe("SequenceSlots.exchange", () => {
  it("trades held sequences for free ones without changing how many are free", async () => {
    const slots = new SequenceSlots("m", 3, { maxWaiting: 4, timeoutMs: 1000 });
    const held = await slots.acquire(1);
    expect(held).toEqual([0]);
    slots.exchange(held, [2]);
    expect(slots.freeIds).toEqual([0, 1]);
    expect(() => slots.exchange([2], [2, 1])).toThrow(RangeError);
    slots.release([2]);
    expect(slots.lastUsed(2)).toBeGreaterThan(slots.lastUsed(0));
    expect(slots.freeIds).toEqual([0, 1, 2]);
  });
});
