// An experiment's results: usage records, feedback and state in, per-variant figures and
// tests against control out. Pure; traffic.ts feeds it what the usage log and the store return.
import type { ExperimentSpec, VariantSpec } from "../config/experiments.ts";
import type { ExperimentEvent, ExperimentState, FeedbackEntry } from "../storage/experiments.ts";
import type { UsageRecord } from "../telemetry/record.ts";
import { type Percentiles, percentiles } from "../telemetry/summary.ts";
import { outcomeOf, timesModel } from "./outcome.ts";
import {
  ALPHA,
  mannWhitneyU,
  overallVerdict,
  type ProportionTest,
  type RankTest,
  twoProportionZTest,
  type Verdict,
  verdictOf,
} from "./stats.ts";

export interface VariantResult {
  name: string;
  models: string[];
  control: boolean;
  canary: boolean;
  configured_weight: number;
  effective_weight: number;
  state: "active" | "rolled_back";
  /** Every request assigned to the variant in the range, forced ones apart. */
  requests: number;
  /** Requests that forced this variant (x-roundhouse-variant): in no other figure here. */
  forced: number;
  /** Requests its own models failed (see outcome.ts). */
  errors: number;
  /** errors / (requests that were not client errors or disconnects). */
  error_rate: number;
  client_errors: number;
  client_disconnects: number;
  /** Requests that needed at least one fallback. */
  fallbacks: number;
  cache_hits: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Nearest rank, over successful requests its own model generated (no cache hits). */
  latency_ms: Percentiles;
  ttft_ms: Percentiles;
  feedback: { count: number; mean: number | null };
  /** Null for control itself. */
  vs_control: Comparison | null;
}

export interface Comparison {
  alpha: number;
  /** Two-proportion z-test on error rates. */
  error_rate: (ProportionTest & { verdict: Verdict }) | null;
  /** Mann–Whitney U on latencies. */
  latency: (RankTest & { verdict: Verdict }) | null;
  verdict: Verdict;
}

export interface ExperimentResults {
  object: "experiment";
  name: string;
  sticky_header: string;
  control: string;
  since: string;
  until: string;
  variants: VariantResult[];
  events: ExperimentEvent[];
}

export interface ResultsInput {
  spec: ExperimentSpec;
  state: ExperimentState;
  /** Records of any experiment: the ones of this one are picked out. */
  records: Iterable<UsageRecord>;
  feedback: readonly FeedbackEntry[];
  events: ExperimentEvent[];
  since: Date;
  until: Date;
}

interface Tally {
  requests: number;
  forced: number;
  ok: number;
  failed: number;
  clientErrors: number;
  disconnects: number;
  fallbacks: number;
  cacheHits: number;
  prompt: number;
  completion: number;
  latencies: number[];
  ttfts: number[];
  feedbackCount: number;
  feedbackSum: number;
}

/** The weight a variant gets now: 0 once rolled back, else the run-time weight, else the configured one. */
export function effectiveWeight(variant: VariantSpec, state: ExperimentState | undefined): number {
  if (state?.rolledBack[variant.name]) return 0;
  return state?.weights[variant.name] ?? variant.weight;
}

export function experimentResults(input: ResultsInput): ExperimentResults {
  const { spec, state } = input;
  const tallies = new Map<string, Tally>(spec.variants.map((v) => [v.name, emptyTally()]));
  const variants = new Map(spec.variants.map((v) => [v.name, v]));
  for (const r of input.records) {
    if (r.experiment !== spec.name || r.variant === undefined) continue;
    const t = tallies.get(r.variant);
    const variant = variants.get(r.variant);
    if (!t || !variant) continue;
    if (r.forced) t.forced++;
    else add(t, r, variant);
  }
  for (const f of input.feedback) {
    const t = tallies.get(f.variant);
    if (!t) continue;
    t.feedbackCount++;
    t.feedbackSum += f.score;
  }
  const control = tallies.get(spec.control) ?? emptyTally();
  return {
    object: "experiment",
    name: spec.name,
    sticky_header: spec.stickyHeader,
    control: spec.control,
    since: input.since.toISOString(),
    until: input.until.toISOString(),
    variants: spec.variants.map((v) => {
      const t = tallies.get(v.name) ?? emptyTally();
      const judged = t.ok + t.failed;
      return {
        name: v.name,
        models: v.models,
        control: v.name === spec.control,
        canary: v.canary,
        configured_weight: v.weight,
        effective_weight: effectiveWeight(v, state),
        state: state.rolledBack[v.name] ? "rolled_back" : "active",
        requests: t.requests,
        forced: t.forced,
        errors: t.failed,
        error_rate: judged === 0 ? 0 : round(t.failed / judged, 4),
        client_errors: t.clientErrors,
        client_disconnects: t.disconnects,
        fallbacks: t.fallbacks,
        cache_hits: t.cacheHits,
        prompt_tokens: t.prompt,
        completion_tokens: t.completion,
        // percentiles() sorts in place; the rank test in compare() does not care about order.
        latency_ms: percentiles(t.latencies),
        ttft_ms: percentiles(t.ttfts),
        feedback: {
          count: t.feedbackCount,
          mean: t.feedbackCount === 0 ? null : round(t.feedbackSum / t.feedbackCount, 4),
        },
        vs_control: v.name === spec.control ? null : compare(t, control),
      };
    }),
    events: input.events,
  };
}

export function compare(variant: TallyLike, control: TallyLike): Comparison {
  const errors = twoProportionZTest(
    variant.failed,
    variant.ok + variant.failed,
    control.failed,
    control.ok + control.failed,
  );
  const latency = mannWhitneyU(variant.latencies, control.latencies);
  const errorVerdict = verdictOf(errors);
  const latencyVerdict = verdictOf(latency);
  return {
    alpha: ALPHA,
    error_rate: errors && { ...errors, verdict: errorVerdict },
    latency: latency && { ...latency, verdict: latencyVerdict },
    verdict: overallVerdict([errorVerdict, latencyVerdict]),
  };
}

/** What compare needs of a variant's tally. */
export interface TallyLike {
  ok: number;
  failed: number;
  latencies: readonly number[];
}

function add(t: Tally, r: UsageRecord, variant: VariantSpec): void {
  const outcome = outcomeOf(r, variant);
  t.requests++;
  t.prompt += r.prompt_tokens;
  t.completion += r.completion_tokens;
  if (r.fallbacks > 0) t.fallbacks++;
  if (r.cache === "hit") t.cacheHits++;
  if (outcome === "ok") t.ok++;
  else if (outcome === "failed") t.failed++;
  else if (outcome === "client_error") t.clientErrors++;
  else t.disconnects++;
  if (timesModel(r, outcome)) {
    t.latencies.push(r.latency_ms);
    if (r.ttft_ms !== undefined) t.ttfts.push(r.ttft_ms);
  }
}

function emptyTally(): Tally {
  return {
    requests: 0,
    forced: 0,
    ok: 0,
    failed: 0,
    clientErrors: 0,
    disconnects: 0,
    fallbacks: 0,
    cacheHits: 0,
    prompt: 0,
    completion: 0,
    latencies: [],
    ttfts: [],
    feedbackCount: 0,
    feedbackSum: 0,
  };
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
