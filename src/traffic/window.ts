// The recent samples of each experiment variant that the rollback rules are judged on. Kept in
// this process: each replica judges the traffic it served plus, with a shared (Redis) usage
// log, what the other replicas served, and a rollback any replica decides goes to all of them
// through the state store. Bounded by age (the longest rule window) and by count, so a busy
// variant costs a fixed amount of memory and evaluation time.
import type { Sample } from "./rollback.ts";

export const MAX_SAMPLES = 10_000;

export class SampleWindows {
  private readonly samples = new Map<string, Sample[]>();

  constructor(private readonly maxSamples = MAX_SAMPLES) {}

  /**
   * Samples arrive nearly in completion order (other replicas' a poll late), so pruning from
   * the front is enough to bound age; the rules cut each window exactly (rollback.ts inWindow).
   */
  add(experiment: string, variant: string, sample: Sample, maxAgeMs: number): void {
    const key = keyOf(experiment, variant);
    let list = this.samples.get(key);
    if (!list) {
      list = [];
      this.samples.set(key, list);
    }
    list.push(sample);
    const from = sample.at - maxAgeMs;
    let drop = 0;
    while (drop < list.length && (list[drop] as Sample).at <= from) drop++;
    drop = Math.max(drop, list.length - this.maxSamples);
    // Dropping from the front moves every sample behind: at a full window that was a copy of
    // 10,000 samples per request. Dropped in batches instead (the rules cut their windows by
    // time themselves), which bounds a window at 1.25 × maxSamples and the copying at one per
    // quarter window; a window of one's own age is emptied at once.
    if (drop > 0 && (drop === list.length || drop >= this.maxSamples / 4)) list.splice(0, drop);
    else if (list.length > this.maxSamples * 1.25) list.splice(0, list.length - this.maxSamples);
  }

  /** Samples that completed after `after` (a restore), oldest first. */
  get(experiment: string, variant: string, after = Number.NEGATIVE_INFINITY): readonly Sample[] {
    const list = this.samples.get(keyOf(experiment, variant)) ?? [];
    return after === Number.NEGATIVE_INFINITY ? list : list.filter((s) => s.at > after);
  }

  clear(experiment: string, variant: string): void {
    this.samples.delete(keyOf(experiment, variant));
  }
}

function keyOf(experiment: string, variant: string): string {
  return `${experiment}\0${variant}`;
}
