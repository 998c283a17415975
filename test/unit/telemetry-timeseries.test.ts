// The dashboard's time series: records land in aligned buckets, per group and in total, with
// rates, percentiles and gaps (null) where a bucket has nothing to measure.
import { describe, expect, it } from "vitest";
import { bucketStarts, defaultStep, TimeSeriesBuilder } from "../../src/telemetry/timeseries.ts";
import { usageRecord } from "../helpers/usage-record.ts";

const at = (second: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
const T0 = Date.UTC(2026, 0, 1) / 1000;

describe("bucketStarts and defaultStep", () => {
  it("aligns buckets to multiples of the step and covers the range", () => {
    const since = new Date((T0 + 7) * 1000);
    const until = new Date((T0 + 31) * 1000);
    expect(bucketStarts(since, until, 10)).toEqual([T0, T0 + 10, T0 + 20, T0 + 30]);
    expect(bucketStarts(since, since, 10)).toEqual([T0]);
  });

  it("picks a round step giving about 60 buckets", () => {
    expect(defaultStep(3600)).toBe(60);
    expect(defaultStep(900)).toBe(15);
    expect(defaultStep(86_400)).toBe(1800);
    expect(defaultStep(30)).toBe(1);
  });
});

describe("TimeSeriesBuilder", () => {
  const since = new Date(T0 * 1000);
  const until = new Date((T0 + 30) * 1000);

  it("counts each record in its bucket, per model and in total", () => {
    const b = new TimeSeriesBuilder("model", since, until, 10);
    b.add(usageRecord({ started_at: at(1), served_model: "a", latency_ms: 100, ttft_ms: 10, completion_tokens: 20 }));
    b.add(usageRecord({ started_at: at(2), served_model: "a", latency_ms: 300, ttft_ms: 30, completion_tokens: 30 }));
    b.add(usageRecord({ started_at: at(12), served_model: "b", latency_ms: 50, completion_tokens: 5 }));
    // Outside the range: left out, not clamped into the last bucket.
    b.add(usageRecord({ started_at: at(45), served_model: "b" }));
    const s = b.result();
    expect(s.timestamps).toEqual([T0, T0 + 10, T0 + 20]);
    expect(s.groups.map((g) => g.group)).toEqual(["total", "a", "b"]);
    const [total, a, bb] = s.groups;
    expect(total?.requests).toEqual([2, 1, 0]);
    expect(total?.requests_per_second).toEqual([0.2, 0.1, 0]);
    expect(a?.requests).toEqual([2, 0, 0]);
    expect(bb?.requests).toEqual([0, 1, 0]);
    expect(a?.latency_ms.p50).toEqual([100, null, null]);
    expect(a?.latency_ms.p95).toEqual([300, null, null]);
    expect(a?.ttft_ms.p95).toEqual([30, null, null]);
    expect(a?.tokens_per_second).toEqual([5, 0, 0]);
    expect(total?.tokens_per_second).toEqual([5, 0.5, 0]);
    expect(total?.error_rate).toEqual([0, 0, null]);
  });

  it("counts failures as /admin/usage does, and leaves client errors out of the rate and the timings", () => {
    const b = new TimeSeriesBuilder("model", since, until, 10);
    b.add(usageRecord({ started_at: at(1), served_model: "a", latency_ms: 10 }));
    b.add(
      usageRecord({ started_at: at(1), served_model: "a", status: 503, error_type: "server_error", latency_ms: 1 }),
    );
    b.add(
      usageRecord({
        started_at: at(1),
        served_model: "a",
        status: 400,
        error_type: "invalid_request_error",
        latency_ms: 1,
      }),
    );
    b.add(usageRecord({ started_at: at(1), served_model: "a", client_disconnected: true, latency_ms: 999 }));
    const a = b.result().groups[1];
    expect(a?.requests[0]).toBe(4);
    expect(a?.error_rate[0]).toBe(0.5);
    expect(a?.latency_ms.p95[0]).toBe(10);
  });

  it("gives the cache hit rate over lookups (a bypass is not one)", () => {
    const b = new TimeSeriesBuilder("model", since, until, 10);
    for (const cache of ["hit", "hit", "miss", "error", "bypass"] as const) {
      b.add(usageRecord({ started_at: at(3), served_model: "a", cache }));
    }
    b.add(usageRecord({ started_at: at(13), served_model: "a", cache: "bypass" }));
    expect(b.result().groups[0]?.cache_hit_rate).toEqual([0.5, null, null]);
  });

  it("times a variant's model, not its cache hits, as the experiment results do", () => {
    const byVariant = new TimeSeriesBuilder("variant", since, until, 10);
    const byModel = new TimeSeriesBuilder("model", since, until, 10);
    for (const b of [byVariant, byModel]) {
      b.add(usageRecord({ started_at: at(1), experiment: "chat", variant: "a", latency_ms: 40, ttft_ms: 20 }));
      b.add(
        usageRecord({ started_at: at(1), experiment: "chat", variant: "a", latency_ms: 1, ttft_ms: 1, cache: "hit" }),
      );
    }
    expect(byVariant.result().groups[1]?.latency_ms.p50[0]).toBe(40);
    expect(byVariant.result().groups[1]?.ttft_ms.p50[0]).toBe(20);
    expect(byModel.result().groups[0]?.latency_ms.p50[0]).toBe(1);
  });

  it("groups by experiment/variant, leaving forced requests to the total only", () => {
    const b = new TimeSeriesBuilder("variant", since, until, 10);
    b.add(usageRecord({ started_at: at(1), experiment: "chat", variant: "control" }));
    b.add(usageRecord({ started_at: at(1), experiment: "chat", variant: "canary" }));
    b.add(usageRecord({ started_at: at(1), experiment: "chat", variant: "canary", forced: true }));
    b.add(usageRecord({ started_at: at(1) }));
    const s = b.result();
    expect(s.groups.map((g) => [g.group, g.requests[0]])).toEqual([
      ["total", 4],
      ["chat/canary", 1],
      ["chat/control", 1],
      ["none", 1],
    ]);
  });
});
