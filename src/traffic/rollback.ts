// Canary rollback rules: window samples in, a decision out. Pure, so every threshold and
// minimum-sample edge is unit-testable without a server; the caller (traffic.ts) feeds it the
// samples of requests as they complete and acts on a trip.
import type { RollbackMetric, RollbackRuleSpec } from "../config/experiments.ts";
import { percentile } from "../telemetry/summary.ts";

/** One completed request of a variant, as the rules see it. */
export interface Sample {
  /** Epoch ms when it completed. */
  at: number;
  /** The variant's own models failed it (see traffic.ts sampleOf). */
  failed: boolean;
  /** Only for successful requests: a fast failure says nothing about speed. */
  latencyMs: number | undefined;
  ttftMs: number | undefined;
}

export interface MetricValue {
  /** Null when no sample carries the metric. */
  value: number | null;
  /** Samples the value was computed from (what min_requests counts). */
  n: number;
}

export interface RollbackTrip {
  rule: RollbackRuleSpec;
  observed: number;
  threshold: number;
  /** Control's value, for max_vs_control rules. */
  controlValue: number | undefined;
  counts: { variant: number; control: number | undefined };
}

/** The metric over `samples` (already cut to the window). */
export function metricOf(metric: RollbackMetric, samples: readonly Sample[]): MetricValue {
  if (metric === "error_rate") {
    let failed = 0;
    for (const s of samples) if (s.failed) failed++;
    return { value: samples.length === 0 ? null : failed / samples.length, n: samples.length };
  }
  const values: number[] = [];
  for (const s of samples) {
    const v = metric === "latency_p95_ms" ? s.latencyMs : s.ttftMs;
    if (v !== undefined) values.push(v);
  }
  values.sort((a, b) => a - b);
  return { value: percentile(values, 95), n: values.length };
}

/** Samples that completed within the last `windowMs` before `now`. */
export function inWindow(samples: readonly Sample[], windowMs: number, now: number): Sample[] {
  const from = now - windowMs;
  return samples.filter((s) => s.at > from && s.at <= now);
}

/**
 * The first rule that trips, or undefined. A rule is judged only once the variant has
 * `min_requests` samples carrying its metric in the window, and for max_vs_control once control
 * has as many too; it trips when the value is strictly above its bound (max, or control's value
 * times max_vs_control; a control with no errors makes any canary error trip an error-rate ratio).
 */
export function evaluateRollback(
  rules: readonly RollbackRuleSpec[],
  variant: readonly Sample[],
  control: readonly Sample[],
  now: number,
): RollbackTrip | undefined {
  for (const rule of rules) {
    const mine = metricOf(rule.metric, inWindow(variant, rule.windowMs, now));
    if (mine.value === null || mine.n < rule.minRequests) continue;
    if (rule.max !== undefined) {
      if (mine.value > rule.max) {
        return { rule, observed: mine.value, threshold: rule.max, controlValue: undefined, counts: counts(mine) };
      }
      continue;
    }
    if (rule.maxVsControl === undefined) continue;
    const theirs = metricOf(rule.metric, inWindow(control, rule.windowMs, now));
    if (theirs.value === null || theirs.n < rule.minRequests) continue;
    const threshold = theirs.value * rule.maxVsControl;
    if (mine.value > threshold) {
      return { rule, observed: mine.value, threshold, controlValue: theirs.value, counts: counts(mine, theirs) };
    }
  }
  return undefined;
}

function counts(mine: MetricValue, theirs?: MetricValue): RollbackTrip["counts"] {
  return { variant: mine.n, control: theirs?.n };
}
