import { describe, expect, it } from "vitest";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import { groupOf, percentile, UsageSummary } from "../../src/telemetry/summary.ts";

let n = 0;
const record = (extra: Partial<UsageRecord> = {}): UsageRecord => ({
  request_id: `r${n++}`,
  started_at: "2025-06-12T08:00:00.000Z",
  key_id: "key_aaaaaaaaaaaa",
  served_model: "a",
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

describe("percentile (nearest rank)", () => {
  it("returns an observed value", () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 50)).toBe(50);
    expect(percentile(sorted, 95)).toBe(95);
    expect(percentile(sorted, 99)).toBe(99);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([1, 2, 3, 4], 50)).toBe(2);
    expect(percentile([1, 2, 3, 4], 95)).toBe(4);
  });

  it("is null for no values", () => {
    expect(percentile([], 50)).toBeNull();
  });
});

describe("groupOf", () => {
  it("groups by served model, variant or key", () => {
    expect(groupOf(record(), "model")).toBe("a");
    expect(groupOf(record({ served_model: undefined }), "model")).toBe("unknown");
    expect(groupOf(record(), "variant")).toBe("none");
    expect(groupOf(record({ experiment: "chat", variant: "canary" }), "variant")).toBe("chat/canary");
    expect(groupOf(record(), "key")).toBe("key_aaaaaaaaaaaa");
  });
});

describe("UsageSummary", () => {
  it("totals tokens, counts errors and takes percentiles over successes only", () => {
    const summary = new UsageSummary("model");
    for (let i = 1; i <= 20; i++) summary.add(record({ latency_ms: i * 10, ttft_ms: i }));
    summary.add(record({ status: 400, error_type: "invalid_request_error", latency_ms: 1, ttft_ms: undefined }));
    summary.add(record({ status: 503, error_type: "server_error", latency_ms: 2, ttft_ms: undefined }));
    summary.add(record({ status: 499, client_disconnected: true, latency_ms: 5000, completion_tokens: 2 }));
    summary.add(
      record({
        served_model: "b",
        reference: { model: "gpt-4o-mini", prompt_tokens: 8, completion_tokens: 4, cost_usd: 0.25 },
      }),
    );
    summary.add(
      record({
        served_model: "b",
        reference: { model: "gpt-4o-mini", prompt_tokens: 8, completion_tokens: 4, cost_usd: 0.5 },
      }),
    );

    const [a, b] = summary.result();
    expect(a).toEqual({
      group: "a",
      requests: 23,
      // The 503 over the 21 requests the server answered or failed: the 400 is the client's own
      // error and the 499 its departure, neither the server's (telemetry/record.ts outcomeOf).
      errors: 1,
      error_rate: 0.0476,
      client_errors: 1,
      client_disconnects: 1,
      prompt_tokens: 230,
      completion_tokens: 22 * 5 + 2,
      latency_ms: { p50: 100, p95: 190, p99: 200 },
      ttft_ms: { p50: 10, p95: 19, p99: 20 },
      cost_avoided_usd: 0,
    });
    expect(b).toMatchObject({ group: "b", requests: 2, errors: 0, error_rate: 0, cost_avoided_usd: 0.75 });
  });

  it("reports null percentiles for a group with no successes", () => {
    const summary = new UsageSummary("key");
    summary.add(record({ status: 503, error_type: "server_error" }));
    expect(summary.result()[0]).toMatchObject({
      errors: 1,
      error_rate: 1,
      latency_ms: { p50: null, p95: null, p99: null },
    });
  });
});
