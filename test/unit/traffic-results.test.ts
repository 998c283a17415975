import { describe, expect, it } from "vitest";
import type { ExperimentSpec } from "../../src/config/experiments.ts";
import type { ExperimentState, RollbackEvent } from "../../src/storage/experiments.ts";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import { effectiveWeight, experimentResults } from "../../src/traffic/results.ts";

const spec: ExperimentSpec = {
  name: "chat",
  stickyHeader: "x-user-id",
  control: "control",
  forceKeys: [],
  variants: [
    { name: "control", models: ["a"], weight: 90, canary: false, fallback: true, rollback: [] },
    { name: "canary", models: ["b"], weight: 10, canary: true, fallback: true, rollback: [] },
  ],
};

let n = 0;
const record = (variant: string, extra: Partial<UsageRecord> = {}): UsageRecord => ({
  request_id: `r${n++}`,
  started_at: "2025-06-12T08:00:00.000Z",
  key_id: "anonymous",
  served_model: variant === "control" ? "a" : "b",
  experiment: "chat",
  variant,
  status: 200,
  stream: false,
  client_disconnected: false,
  prompt_tokens: 10,
  completion_tokens: 5,
  estimated: false,
  latency_ms: 100,
  ttft_ms: 10,
  fallbacks: 0,
  ...extra,
});

const rolledBack = { type: "rollback" } as RollbackEvent;
const state = (extra: Partial<ExperimentState> = {}): ExperimentState => ({
  startedAt: 0,
  weights: {},
  rolledBack: {},
  restoredAt: {},
  ...extra,
});

describe("experimentResults", () => {
  it("counts outcomes as the rollback rules do, and times only model-generated successes", () => {
    const records = [
      record("control", { latency_ms: 100 }),
      record("control", { latency_ms: 200, cache: "hit" }),
      record("control", { status: 400, error_type: "invalid_request_error", latency_ms: 1 }),
      record("canary", { latency_ms: 300, ttft_ms: 30 }),
      record("canary", { status: 503, error_type: "server_error", latency_ms: 2 }),
      record("canary", { status: 429, error_type: "requests", latency_ms: 2 }),
      record("canary", { served_model: "a", fallbacks: 1, latency_ms: 150 }),
      record("canary", { status: 499, client_disconnected: true, latency_ms: 50 }),
      record("other", {}),
      record("control", { experiment: "search" }),
    ];
    const r = experimentResults({
      spec,
      state: state(),
      records,
      feedback: [{ at: 1, request_id: "x", experiment: "chat", variant: "canary", score: 1 }],
      events: [],
      since: new Date(0),
      until: new Date(1),
    });
    expect(r.variants[0]).toMatchObject({
      name: "control",
      control: true,
      requests: 3,
      errors: 0,
      error_rate: 0,
      client_errors: 1,
      cache_hits: 1,
      latency_ms: { p50: 100, p95: 100 },
      vs_control: null,
      feedback: { count: 0, mean: null },
    });
    expect(r.variants[1]).toMatchObject({
      name: "canary",
      requests: 5,
      errors: 3,
      error_rate: 0.75,
      fallbacks: 1,
      client_disconnects: 1,
      prompt_tokens: 50,
      latency_ms: { p50: 300, p95: 300 },
      ttft_ms: { p50: 30 },
      feedback: { count: 1, mean: 1 },
    });
    expect(r.variants[1]?.vs_control?.error_rate).toMatchObject({ difference: 0.75 });
    expect(r.variants[1]?.vs_control?.latency?.u).toBe(1);
  });

  it("reports effective weights: run-time over configured, 0 once rolled back", () => {
    const canary = spec.variants[1] as ExperimentSpec["variants"][number];
    expect(effectiveWeight(canary, undefined)).toBe(10);
    expect(effectiveWeight(canary, state({ weights: { canary: 25 } }))).toBe(25);
    expect(effectiveWeight(canary, state({ weights: { canary: 25 }, rolledBack: { canary: rolledBack } }))).toBe(0);
    const r = experimentResults({
      spec,
      state: state({ rolledBack: { canary: rolledBack } }),
      records: [],
      feedback: [],
      events: [],
      since: new Date(0),
      until: new Date(1),
    });
    expect(r.variants.map((v) => [v.state, v.effective_weight])).toEqual([
      ["active", 90],
      ["rolled_back", 0],
    ]);
  });
});
