// /admin/usage's arithmetic: usage records → per-group totals, error rate, latency and TTFT
// percentiles, cost avoided. Pure; the route feeds it whatever the usage log returns.
import { outcomeOf, type UsageRecord } from "./record.ts";

export const GROUP_BY = ["model", "variant", "key"] as const;
export type GroupBy = (typeof GROUP_BY)[number];

export interface Percentiles {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface UsageGroup {
  group: string;
  requests: number;
  /** Failures of the server's side (telemetry/record.ts outcomeOf). */
  errors: number;
  error_rate: number;
  /** 4xx other than 429: the client's own mistakes. */
  client_errors: number;
  client_disconnects: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** Over requests that succeeded: a fast 400 or an abandoned stream says nothing about speed. */
  latency_ms: Percentiles;
  ttft_ms: Percentiles;
  /** What the same tokens would have cost on each model's reference_price model. */
  cost_avoided_usd: number;
}

/** The group a record belongs to: its served model, its experiment/variant, or its key id. */
export function groupOf(r: UsageRecord, by: GroupBy): string {
  switch (by) {
    case "model":
      return r.served_model ?? "unknown";
    case "variant":
      return r.variant === undefined ? "none" : `${r.experiment ?? ""}/${r.variant}`;
    case "key":
      return r.key_id;
  }
}

/** Nearest-rank percentile of ascending `sorted`: an observed value, never an interpolation. */
export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? null;
}

export function percentiles(values: number[]): Percentiles {
  const sorted = values.sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p95: percentile(sorted, 95), p99: percentile(sorted, 99) };
}

interface Accumulator {
  requests: number;
  errors: number;
  clientErrors: number;
  disconnects: number;
  prompt: number;
  completion: number;
  latencies: number[];
  ttfts: number[];
  cost: number;
}

/**
 * Keeps every latency of the range in memory (16 bytes a request for both series): exact
 * percentiles up to millions of requests; past that, swap the arrays for a sketch.
 */
export class UsageSummary {
  private readonly groups = new Map<string, Accumulator>();

  constructor(private readonly by: GroupBy) {}

  add(r: UsageRecord): void {
    const key = groupOf(r, this.by);
    let g = this.groups.get(key);
    if (!g) {
      g = {
        requests: 0,
        errors: 0,
        clientErrors: 0,
        disconnects: 0,
        prompt: 0,
        completion: 0,
        latencies: [],
        ttfts: [],
        cost: 0,
      };
      this.groups.set(key, g);
    }
    g.requests++;
    g.prompt += r.prompt_tokens;
    g.completion += r.completion_tokens;
    g.cost += r.reference?.cost_usd ?? 0;
    const outcome = outcomeOf(r);
    if (outcome === "disconnected") g.disconnects++;
    else if (outcome === "failed") g.errors++;
    else if (outcome === "client_error") g.clientErrors++;
    else {
      g.latencies.push(r.latency_ms);
      if (r.ttft_ms !== undefined) g.ttfts.push(r.ttft_ms);
    }
  }

  /** Groups by name. */
  result(): UsageGroup[] {
    return [...this.groups.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([group, g]) => ({
        group,
        requests: g.requests,
        errors: g.errors,
        // As the experiment results count it: failures among the requests the server answered
        // or failed, not counting the client's own errors or departures.
        error_rate:
          g.requests - g.clientErrors - g.disconnects === 0
            ? 0
            : round(g.errors / (g.requests - g.clientErrors - g.disconnects), 4),
        client_errors: g.clientErrors,
        client_disconnects: g.disconnects,
        prompt_tokens: g.prompt,
        completion_tokens: g.completion,
        latency_ms: percentiles(g.latencies),
        ttft_ms: percentiles(g.ttfts),
        cost_avoided_usd: round(g.cost, 6),
      }));
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
