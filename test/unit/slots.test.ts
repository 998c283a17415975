import { describe, expect, it } from "vitest";
import { AbortedError, QueueFullError, QueueTimeoutError } from "../../src/engine/errors.ts";
import { SequenceSlots } from "../../src/engine/slots.ts";

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
