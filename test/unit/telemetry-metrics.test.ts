import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { Metrics } from "../../src/telemetry/metrics.ts";
import type { UsageRecord } from "../../src/telemetry/record.ts";

const record = (extra: Partial<UsageRecord> = {}): UsageRecord => ({
  request_id: "r",
  started_at: "2025-06-12T08:00:00.000Z",
  key_id: "key_aaaaaaaaaaaa",
  served_model: "tiny",
  status: 200,
  stream: true,
  client_disconnected: false,
  prompt_tokens: 10,
  completion_tokens: 20,
  estimated: false,
  latency_ms: 1500,
  ttft_ms: 100,
  tokens_per_second: 42,
  fallbacks: 0,
  ...extra,
});

async function values(registry: Registry, name: string) {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values ?? [];
}

describe("Metrics", () => {
  it("turns records into counters and histograms with bounded labels", async () => {
    const registry = new Registry();
    const metrics = new Metrics(registry, () => [
      { model: "tiny", loaded: true, busy: 2, waiting: 3, kvCacheUsage: 0.4, promptCacheBytes: 0 },
    ]);
    metrics.observe(record());
    metrics.observe(
      record({
        served_model: undefined,
        model: "whatever-the-client-sent",
        status: 404,
        error_type: "invalid_request_error",
        prompt_tokens: 0,
        completion_tokens: 0,
        ttft_ms: undefined,
        tokens_per_second: undefined,
      }),
    );
    metrics.observe(record({ variant: "canary", experiment: "chat", cache: "hit" }));
    metrics.modelLoaded("tiny", 1.25);
    metrics.queued("tiny", 0, false);
    metrics.queued("tiny", 0.75, true);

    const requests = await values(registry, "roundhouse_requests_total");
    expect(requests.map((v) => [v.labels, v.value])).toEqual([
      [{ model: "tiny", variant: "none", operation: "chat", status: "200" }, 1],
      [{ model: "unknown", variant: "none", operation: "chat", status: "404" }, 1],
      [{ model: "tiny", variant: "canary", operation: "chat", status: "200" }, 1],
    ]);
    const tokens = await values(registry, "roundhouse_tokens_total");
    expect(tokens).toContainEqual({
      labels: { model: "tiny", variant: "none", operation: "chat", kind: "completion" },
      value: 20,
    });
    const duration = await values(registry, "roundhouse_request_duration_seconds");
    const counts = duration.filter(
      (v) => "metricName" in v && v.metricName === "roundhouse_request_duration_seconds_count",
    );
    // The 404 is not timed: only successes are.
    expect(counts.reduce((n, v) => n + v.value, 0)).toBe(2);
    expect(await values(registry, "roundhouse_cache_requests_total")).toEqual([
      { labels: { result: "hit" }, value: 1 },
    ]);
    expect(await values(registry, "roundhouse_queue_depth")).toEqual([{ labels: { model: "tiny" }, value: 3 }]);
    expect(await values(registry, "roundhouse_busy_sequences")).toEqual([{ labels: { model: "tiny" }, value: 2 }]);
    expect(await values(registry, "roundhouse_models_loaded")).toEqual([{ labels: {}, value: 1 }]);
    expect(await values(registry, "roundhouse_kv_cache_usage_ratio")).toEqual([
      { labels: { model: "tiny" }, value: 0.4 },
    ]);
    expect(await values(registry, "roundhouse_requests_deferred_total")).toEqual([
      { labels: { model: "tiny" }, value: 1 },
    ]);
    const text = await registry.metrics();
    expect(text).not.toContain("whatever-the-client-sent");
    expect(text).not.toContain("key_aaaaaaaaaaaa");
    expect(text).toContain('roundhouse_model_load_seconds_sum{model="tiny"} 1.25');
    expect(text).toContain('roundhouse_request_queue_time_seconds_sum{model="tiny"} 0.75');
    expect(text).toContain('roundhouse_request_queue_time_seconds_count{model="tiny"} 2');
    // Time per output token is the inverse of each request's decode speed (42 tokens/s here).
    expect(text).toContain('roundhouse_time_per_output_token_seconds_count{model="tiny",variant="none"} 1');
    expect(text).toContain(`roundhouse_time_per_output_token_seconds_sum{model="tiny",variant="none"} ${1 / 42}`);
    expect(text).toContain("nodejs_heap_size_total_bytes");
  });

  it("gives each app its own registry", () => {
    const a = new Registry();
    const b = new Registry();
    new Metrics(a, () => []);
    expect(() => new Metrics(b, () => [])).not.toThrow();
  });
});

describe("Metrics labels", () => {
  it("a fine-tuned model is labelled fine_tuned: a customer's suffix and job id never reach /metrics", async () => {
    const registry = new Registry();
    const metrics = new Metrics(registry, () => []);
    metrics.observe(record({ served_model: "ft:roundhouse-tiny:acme-payroll:ftjob-AbCdEfGhIjKlMnOpQrStUvWx" }));
    metrics.modelLoaded("ft:roundhouse-tiny:acme-payroll:ftjob-AbCdEfGhIjKlMnOpQrStUvWx", 1.5);
    const text = await registry.metrics();
    expect(text).not.toContain("acme-payroll");
    expect(text).not.toContain("ftjob-");
    expect((await values(registry, "roundhouse_requests_total"))[0]?.labels.model).toBe("fine_tuned");
  });
});
