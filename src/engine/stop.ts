// Stop sequences over streamed text: text is released only once it can no longer be
// the start of a stop sequence, so a stop string never reaches the client, even when
// the model produces it across several tokens.

export class StopMatcher {
  private held = "";

  constructor(private readonly stops: readonly string[]) {}

  /** Feeds new text; returns what may be sent now, and whether a stop sequence ended it. */
  push(text: string): { emit: string; stopped: boolean } {
    this.held += text;
    let cut = -1;
    for (const stop of this.stops) {
      const at = this.held.indexOf(stop);
      if (at !== -1 && (cut === -1 || at < cut)) cut = at;
    }
    if (cut !== -1) {
      const emit = this.held.slice(0, cut);
      this.held = "";
      return { emit, stopped: true };
    }
    const keep = this.longestPendingPrefix();
    const emit = this.held.slice(0, this.held.length - keep);
    this.held = this.held.slice(this.held.length - keep);
    return { emit, stopped: false };
  }

  /** Releases what was held back when generation ends without a stop sequence. */
  flush(): string {
    const rest = this.held;
    this.held = "";
    return rest;
  }

  /** Length of the longest suffix of the held text that begins some stop sequence. */
  private longestPendingPrefix(): number {
    let best = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.held.length); n > best; n--) {
        if (this.held.endsWith(stop.slice(0, n))) {
          best = n;
          break;
        }
      }
    }
    return best;
  }
}
