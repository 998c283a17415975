// Hands out a model's context sequences to requests, first come first served, with a
// bounded wait queue in front: overload is answered at once (queue full) or after a
// bounded wait, never by an unbounded pile-up.
import { AbortedError, QueueFullError, QueueTimeoutError } from "./errors.ts";

export interface SlotLimits {
  maxWaiting: number;
  timeoutMs: number;
}

interface Waiter {
  count: number;
  grant: (ids: number[]) => void;
  fail: (err: Error) => void;
}

export class SequenceSlots {
  /** Free sequence ids, lowest first: llama.cpp batches contiguous ids best (ENGINE-NOTES). */
  private free: number[];
  private readonly waiters: Waiter[] = [];

  constructor(
    private readonly model: string,
    readonly size: number,
    private readonly limits: SlotLimits,
  ) {
    this.free = Array.from({ length: size }, (_, i) => i);
  }

  get busy(): number {
    return this.size - this.free.length;
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /** Whether a request for `count` sequences would wait now (behind others, or for free ones). */
  wouldWait(count: number): boolean {
    return this.waiters.length > 0 || this.free.length < count;
  }

  /** Resolves with `count` sequence ids; rejects when the queue is full, the wait times out or `signal` aborts. */
  acquire(count: number, signal?: AbortSignal): Promise<number[]> {
    if (count > this.size) throw new RangeError(`asked for ${count} sequences, model ${this.model} has ${this.size}`);
    if (signal?.aborted) return Promise.reject(new AbortedError());
    if (this.waiters.length === 0 && this.free.length >= count) return Promise.resolve(this.take(count));
    if (this.waiters.length >= this.limits.maxWaiting) {
      return Promise.reject(new QueueFullError(this.model, Math.max(1, Math.ceil(this.limits.timeoutMs / 10_000))));
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        const at = this.waiters.indexOf(waiter);
        if (at !== -1) this.waiters.splice(at, 1);
      };
      const waiter: Waiter = {
        count,
        grant: (ids) => {
          done();
          resolve(ids);
        },
        fail: (err) => {
          done();
          reject(err);
          this.serve();
        },
      };
      const timer = setTimeout(
        () => waiter.fail(new QueueTimeoutError(this.model, this.limits.timeoutMs)),
        this.limits.timeoutMs,
      );
      const onAbort = () => waiter.fail(new AbortedError());
      signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  release(ids: readonly number[]): void {
    this.free.push(...ids);
    this.free.sort((a, b) => a - b);
    this.serve();
  }

  private take(count: number): number[] {
    return this.free.splice(0, count);
  }

  private serve(): void {
    // Strict FIFO: a large request at the head is not starved by smaller ones behind it.
    while (this.waiters.length > 0) {
      const head = this.waiters[0] as Waiter;
      if (this.free.length < head.count) return;
      head.grant(this.take(head.count));
    }
  }
}
