// A first-in first-out queue of at most `capacity` items that makes room by dropping its
// oldest: what a usage log buffers while its store is down, so memory stays bounded however
// long the outage lasts, and what survives is the most recent traffic. A ring buffer, so
// every operation costs the items it moves, never the items it holds.

export class DropOldestQueue<T> {
  private readonly slots: (T | undefined)[];
  private head = 0;
  private size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError("capacity must be a positive integer");
    this.slots = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.size;
  }

  /** Adds `item` as the newest; returns how many were dropped to make room (0 or 1). */
  push(item: T): number {
    if (this.size === this.capacity) {
      this.slots[this.head] = item;
      this.head = (this.head + 1) % this.capacity;
      return 1;
    }
    this.slots[(this.head + this.size) % this.capacity] = item;
    this.size++;
    return 0;
  }

  /** Removes and returns up to `n` of the oldest items, oldest first. */
  take(n: number): T[] {
    const count = Math.min(n, this.size);
    const out = new Array<T>(count);
    for (let i = 0; i < count; i++) {
      out[i] = this.slots[this.head] as T;
      this.slots[this.head] = undefined;
      this.head = (this.head + 1) % this.capacity;
    }
    this.size -= count;
    return out;
  }

  /**
   * Returns items taken earlier (older than everything held) to the front, in their order.
   * Those that no longer fit are the oldest of all, so they are the ones dropped; returns how many.
   */
  putBack(items: readonly T[]): number {
    const fit = Math.min(items.length, this.capacity - this.size);
    const dropped = items.length - fit;
    for (let i = items.length - 1; i >= dropped; i--) {
      this.head = (this.head - 1 + this.capacity) % this.capacity;
      this.slots[this.head] = items[i];
    }
    this.size += fit;
    return dropped;
  }
}
