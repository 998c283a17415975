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

/** A sequence a request could run on, as the choice between them sees it. */
export interface SequenceCandidate {
  id: number;
  /** Tokens of the request's prompt the sequence already holds, from the start. */
  commonPrefix: number;
  /** When it was last released (0: never used). */
  lastUsed: number;
  /** The request holds it already. */
  held: boolean;
}

/**
 * The fraction of a prompt a sequence must already hold for the request to go there (as
 * llama-server's --slot-prompt-similarity, 0.5): below it, the least recently used sequences are
 * taken instead, so a new conversation does not overwrite the cache of a live one.
 */
export const PROMPT_SIMILARITY = 0.5;

/**
 * Runs of consecutive ids in `ids`: the passes over the weights one decode step of those
 * sequences costs. llama.cpp splits a batch wherever the next sequence id is not the last + 1
 * (lockstep.ts), so {0, 1, 2, 3} decode in one pass and {0, 2, 5, 7} in four.
 */
export function passes(ids: Iterable<number>): number {
  const set = new Set(ids);
  let runs = 0;
  for (const id of set) if (!set.has(id - 1)) runs++;
  return runs;
}

/**
 * Which `count` sequences a request runs on, one at a time. First those that keep the running
 * sequences (`busy`) and the ones picked so far in the fewest runs of consecutive ids, so that
 * every decode step stays one pass; among those, the one holding the longest common prefix of
 * its prompt when the best holds at least PROMPT_SIMILARITY of it, else the least recently
 * used; ties go to the ones it holds already, then the lowest ids. A prompt held elsewhere is
 * copied over (prefix.ts) at the cost of a memory copy. `canCopy` false (a model whose
 * sequences cannot be copied into): where the prompt is held wins over the runs. Pure.
 */
export function pickSequences(
  candidates: readonly SequenceCandidate[],
  count: number,
  promptLength: number,
  busy: readonly number[] = [],
  canCopy = true,
): number[] {
  const best = Math.max(0, ...candidates.map((c) => c.commonPrefix));
  const similar = promptLength > 0 && best >= PROMPT_SIMILARITY * promptLength;
  const running = new Set(busy);
  const left = [...candidates];
  const picked: number[] = [];
  while (picked.length < count && left.length > 0) {
    const runs = new Map(left.map((c) => [c.id, passes([...running, c.id])]));
    left.sort(
      (a, b) =>
        (similar && !canCopy ? b.commonPrefix - a.commonPrefix : 0) ||
        (runs.get(a.id) ?? 0) - (runs.get(b.id) ?? 0) ||
        (similar ? b.commonPrefix - a.commonPrefix : a.lastUsed - b.lastUsed) ||
        Number(b.held) - Number(a.held) ||
        a.id - b.id,
    );
    const next = left.shift() as SequenceCandidate;
    picked.push(next.id);
    running.add(next.id);
  }
  return picked;
}

export class SequenceSlots {
  /** Free sequence ids, lowest first: llama.cpp batches contiguous ids best (ENGINE-NOTES). */
  private free: number[];
  private readonly waiters: Waiter[] = [];
  /** When each sequence was last released (a tick; 0: never). */
  private readonly used: number[];
  private tick = 0;

  constructor(
    private readonly model: string,
    readonly size: number,
    private readonly limits: SlotLimits,
  ) {
    this.free = Array.from({ length: size }, (_, i) => i);
    this.used = Array.from({ length: size }, () => 0);
  }

  /** Sequences no request holds now. */
  get freeIds(): readonly number[] {
    return this.free;
  }

  lastUsed(id: number): number {
    return this.used[id] ?? 0;
  }

  /**
   * Trades sequences a request holds for free ones: it then holds `chosen` (as many as it held,
   * each held or free now). Synchronous, so no other request sees the trade half done; the
   * number of free sequences does not change, so nobody waiting is affected.
   */
  exchange(held: readonly number[], chosen: readonly number[]): void {
    const pool = new Set([...held, ...this.free]);
    if (
      chosen.length !== held.length ||
      !chosen.every((id) => pool.has(id)) ||
      new Set(chosen).size !== chosen.length
    ) {
      throw new RangeError("exchange: chosen sequences must be as many as held, each held or free");
    }
    for (const id of chosen) pool.delete(id);
    this.free = [...pool].sort((a, b) => a - b);
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
    this.tick++;
    for (const id of ids) this.used[id] = this.tick;
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
