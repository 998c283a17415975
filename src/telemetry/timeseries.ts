// /admin/timeseries's arithmetic: usage records → fixed-width time buckets per model or
// variant (and in total), each with request rate, error rate, TTFT and latency percentiles,
// token throughput and cache hit rate. Pure; the route feeds it whatever the usage log returns.
import { outcomeOf, type UsageRecord } from "./record.ts";
import { groupOf, percentile } from "./summary.ts";

export const SERIES_GROUP_BY = ["model", "variant"] as const;
export type SeriesGroupBy = (typeof SERIES_GROUP_BY)[number];

/** The group every record also counts in. */
export const TOTAL = "total";
/** Steps a default picks from: round numbers of seconds. */
const NICE_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21_600, 43_200, 86_400];
/** Buckets a default step aims at: enough for a chart's width, few enough to send every few seconds. */
const TARGET_BUCKETS = 60;
export const MAX_BUCKETS = 2000;

export interface SeriesGroup {
  group: string;
  requests: number[];
  requests_per_second: number[];
  /** Failures over the requests the server answered or failed (as /admin/usage counts it); null with none. */
  error_rate: (number | null)[];
  /** Nearest-rank, over requests that succeeded (by variant: not from the cache); null with none. */
  ttft_ms: { p50: (number | null)[]; p95: (number | null)[] };
  latency_ms: { p50: (number | null)[]; p95: (number | null)[] };
  /** Completion tokens generated per second of the bucket (throughput). */
  tokens_per_second: number[];
  /** Hits over cache lookups (hit, miss or a failed read); null where nothing was looked up. */
  cache_hit_rate: (number | null)[];
}

export interface TimeSeries {
  group_by: SeriesGroupBy;
  step_seconds: number;
  /** Unix seconds at the start of each bucket, ascending; every group's arrays line up with it. */
  timestamps: number[];
  /** `total` first, then the groups by name. */
  groups: SeriesGroup[];
}

/** The step a range gets when none is asked for: the smallest round step giving at most ~60 buckets. */
export function defaultStep(rangeSeconds: number): number {
  const wanted = rangeSeconds / TARGET_BUCKETS;
  return NICE_STEPS.find((s) => s >= wanted) ?? Math.ceil(wanted / 86_400) * 86_400;
}

/** The buckets [since, until) falls into at `step` seconds, aligned to multiples of the step. */
export function bucketStarts(since: Date, until: Date, step: number): number[] {
  const first = Math.floor(since.getTime() / 1000 / step) * step;
  const end = until.getTime() / 1000;
  const starts: number[] = [];
  for (let t = first; t < end || starts.length === 0; t += step) starts.push(t);
  return starts;
}

interface Bucket {
  requests: number;
  failed: number;
  /** Client errors and disconnects: not in the error rate's denominator. */
  excluded: number;
  completion: number;
  latencies: number[];
  ttfts: number[];
  cacheHits: number;
  cacheLookups: number;
}

const emptyBucket = (): Bucket => ({
  requests: 0,
  failed: 0,
  excluded: 0,
  completion: 0,
  latencies: [],
  ttfts: [],
  cacheHits: 0,
  cacheLookups: 0,
});

export class TimeSeriesBuilder {
  private readonly timestamps: number[];
  private readonly first: number;
  private readonly groups = new Map<string, Bucket[]>();

  constructor(
    private readonly by: SeriesGroupBy,
    since: Date,
    until: Date,
    private readonly step: number,
  ) {
    this.timestamps = bucketStarts(since, until, step);
    this.first = this.timestamps[0] ?? 0;
    this.groups.set(TOTAL, this.timestamps.map(emptyBucket));
  }

  add(r: UsageRecord): void {
    const index = Math.floor((Date.parse(r.started_at) / 1000 - this.first) / this.step);
    if (!(index >= 0 && index < this.timestamps.length)) return;
    this.addTo(TOTAL, index, r);
    // Forced requests are in no experiment figure (results, rollbacks): nor in a variant's series.
    if (this.by === "variant" && r.forced) return;
    this.addTo(groupOf(r, this.by), index, r);
  }

  result(): TimeSeries {
    const named = [...this.groups.keys()].filter((g) => g !== TOTAL).sort();
    return {
      group_by: this.by,
      step_seconds: this.step,
      timestamps: this.timestamps,
      groups: [TOTAL, ...named].map((group) => this.series(group, this.groups.get(group) ?? [])),
    };
  }

  private addTo(group: string, index: number, r: UsageRecord): void {
    let buckets = this.groups.get(group);
    if (!buckets) {
      buckets = this.timestamps.map(emptyBucket);
      this.groups.set(group, buckets);
    }
    const b = buckets[index] as Bucket;
    b.requests++;
    b.completion += r.completion_tokens;
    if (r.cache === "hit" || r.cache === "miss" || r.cache === "error") {
      b.cacheLookups++;
      if (r.cache === "hit") b.cacheHits++;
    }
    const outcome = outcomeOf(r);
    if (outcome === "failed") b.failed++;
    else if (outcome === "client_error" || outcome === "disconnected") b.excluded++;
    // By variant, timings are the model's, as the experiment results take them: no cache hits.
    else if (!(this.by === "variant" && r.cache === "hit")) {
      b.latencies.push(r.latency_ms);
      if (r.ttft_ms !== undefined) b.ttfts.push(r.ttft_ms);
    }
  }

  private series(group: string, buckets: Bucket[]): SeriesGroup {
    const sorted = buckets.map((b) => ({
      latencies: b.latencies.sort((x, y) => x - y),
      ttfts: b.ttfts.sort((x, y) => x - y),
    }));
    return {
      group,
      requests: buckets.map((b) => b.requests),
      requests_per_second: buckets.map((b) => round(b.requests / this.step, 4)),
      error_rate: buckets.map((b) =>
        b.requests - b.excluded === 0 ? null : round(b.failed / (b.requests - b.excluded), 4),
      ),
      ttft_ms: {
        p50: sorted.map((s) => percentile(s.ttfts, 50)),
        p95: sorted.map((s) => percentile(s.ttfts, 95)),
      },
      latency_ms: {
        p50: sorted.map((s) => percentile(s.latencies, 50)),
        p95: sorted.map((s) => percentile(s.latencies, 95)),
      },
      tokens_per_second: buckets.map((b) => round(b.completion / this.step, 2)),
      cache_hit_rate: buckets.map((b) => (b.cacheLookups === 0 ? null : round(b.cacheHits / b.cacheLookups, 4))),
    };
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
