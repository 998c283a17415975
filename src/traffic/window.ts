// The recent samples of each experiment variant that the rollback rules are judged on. Kept in
// this process: each replica judges the traffic it served plus, with a shared (Redis) usage
// log, what the other replicas served, and a rollback any replica decides goes to all of them
// through the state store. Bounded by age (the longest rule window) and by count, so a busy
// variant costs a fixed amount of memory and evaluation time.
import type { Sample } from "./rollback.ts";

export const MAX_SAMPLES = 10_000;

/**
 * A variant's samples from `head` on; those before it were dropped but not yet removed.
 * Removing the oldest sample from the front of an array moves every sample behind it, which
 * at a full window was a copy of 10,000 samples per request; the dropped ones are removed in
 * one go once they are a quarter of the bound.
 */
interface Window {
  samples: Sample[];
  head: number;
}

export class SampleWindows {
  private readonly windows = new Map<string, Window>();

  constructor(private readonly maxSamples = MAX_SAMPLES) {}

  /**
   * Samples arrive nearly in completion order (other replicas' a poll late), so dropping from
   * the front is enough to bound age; the rules cut each window exactly (rollback.ts inWindow).
   */
  add(experiment: string, variant: string, sample: Sample, maxAgeMs: number): void {
    const key = keyOf(experiment, variant);
    let w = this.windows.get(key);
    if (!w) {
      w = { samples: [], head: 0 };
      this.windows.set(key, w);
    }
    const { samples } = w;
    samples.push(sample);
    const from = sample.at - maxAgeMs;
    while (w.head < samples.length && (samples[w.head] as Sample).at <= from) w.head++;
    w.head = Math.max(w.head, samples.length - this.maxSamples);
    if (w.head === samples.length || w.head >= this.maxSamples / 4) {
      samples.splice(0, w.head);
      w.head = 0;
    }
  }

  /** Samples that completed after `after` (a restore), oldest first. */
  get(experiment: string, variant: string, after = Number.NEGATIVE_INFINITY): readonly Sample[] {
    const w = this.windows.get(keyOf(experiment, variant));
    if (!w) return [];
    const live = w.head === 0 ? w.samples : w.samples.slice(w.head);
    return after === Number.NEGATIVE_INFINITY ? live : live.filter((s) => s.at > after);
  }

  clear(experiment: string, variant: string): void {
    this.windows.delete(keyOf(experiment, variant));
  }
}

function keyOf(experiment: string, variant: string): string {
  return `${experiment}\0${variant}`;
}
