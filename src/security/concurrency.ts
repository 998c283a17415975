// How many of one kind of long request (uploads) each caller may have in flight at once. In
// memory, per process: a slot is held for a request's lifetime, which a restart ends anyway.
export class ConcurrencyLimit {
  private readonly inFlight = new Map<string, number>();

  constructor(readonly perCaller: number) {}

  /** A release function when `caller` has a free slot, undefined when all are taken. */
  acquire(caller: string): (() => void) | undefined {
    const held = this.inFlight.get(caller) ?? 0;
    if (held >= this.perCaller) return undefined;
    this.inFlight.set(caller, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = (this.inFlight.get(caller) ?? 1) - 1;
      if (now <= 0) this.inFlight.delete(caller);
      else this.inFlight.set(caller, now);
    };
  }
}
