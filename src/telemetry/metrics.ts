// The Prometheus metrics of one app, on its own registry. Label values are bounded: `model`
// is a configured model id, "fine_tuned" (a fine-tuned model's name carries a customer's
// suffix and job id, which /metrics must not show) or "unknown", `variant` a configured variant or "none", `status`
// an HTTP status; request ids, key ids and client-sent names never become labels.
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import { outcomeOf, type UsageRecord } from "./record.ts";

export interface ModelGaugeSample {
  model: string;
  loaded: boolean;
  /** Sequences generating now. */
  busy: number;
  /** Requests waiting for a sequence. */
  waiting: number;
  /** Tokens held in the model's KV cache over its capacity, 0..1. */
  kvCacheUsage: number;
  /** Bytes of its saved conversation states (prompt_cache). */
  promptCacheBytes: number;
}

const PREFIX = "roundhouse_";

export class Metrics {
  private readonly requests: Counter<"model" | "variant" | "operation" | "status">;
  private readonly tokens: Counter<"model" | "variant" | "operation" | "kind">;
  private readonly duration: Histogram<"model" | "variant" | "operation" | "stream">;
  private readonly ttft: Histogram<"model" | "variant" | "stream">;
  private readonly tokensPerSecond: Histogram<"model" | "variant">;
  private readonly cache: Counter<"result">;
  private readonly loadSeconds: Histogram<"model">;
  private readonly queueTime: Histogram<"model">;
  private readonly deferred: Counter<"model">;
  private readonly timePerOutputToken: Histogram<"model" | "variant">;
  private readonly prefixQueries: Counter<"model">;
  private readonly prefixHits: Counter<"model">;
  private readonly promptCacheOps: Counter<"model" | "operation">;
  /** Set by the fine-tuning jobs (later issue). */
  readonly fineTuneJobs: Gauge<"status">;
  /** Incremented by the rollback rules (later issue). */
  readonly rollbacks: Counter<"experiment" | "variant">;
  /** Usage records the usage log gave up on (its store refused them and its buffer was full). */
  readonly usageRecordsDropped: Counter;

  /** `models` is read at scrape time, so pool gauges are never stale and cost nothing between scrapes. */
  constructor(registry: Registry, models: () => readonly ModelGaugeSample[]) {
    // Node's process metrics keep their standard names (process_*, nodejs_*) so stock
    // dashboards work; prom-client allows this once per registry, and each app has its own.
    collectDefaultMetrics({ register: registry });
    const registers = [registry];
    this.requests = new Counter({
      name: `${PREFIX}requests_total`,
      help: "Requests by operation (chat, completions, embeddings) and HTTP status (499: the client went away).",
      labelNames: ["model", "variant", "operation", "status"],
      registers,
    });
    this.tokens = new Counter({
      name: `${PREFIX}tokens_total`,
      help: "Tokens processed: prompt tokens read and completion tokens generated.",
      labelNames: ["model", "variant", "operation", "kind"],
      registers,
    });
    this.duration = new Histogram({
      name: `${PREFIX}request_duration_seconds`,
      help: "Time from request to complete response, for requests that succeeded.",
      labelNames: ["model", "variant", "operation", "stream"],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
      registers,
    });
    this.ttft = new Histogram({
      name: `${PREFIX}time_to_first_token_seconds`,
      help: "Time from request to the first generated content or tool-call delta.",
      labelNames: ["model", "variant", "stream"],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.tokensPerSecond = new Histogram({
      name: `${PREFIX}generation_tokens_per_second`,
      help: "Decode speed per request: tokens after the first over the time from the first delta to the last.",
      labelNames: ["model", "variant"],
      buckets: [1, 2.5, 5, 10, 20, 40, 80, 160, 320, 640, 1280],
      registers,
    });
    this.cache = new Counter({
      name: `${PREFIX}cache_requests_total`,
      help: "Response cache lookups by result (hit, miss, bypass, error).",
      labelNames: ["result"],
      registers,
    });
    this.loadSeconds = new Histogram({
      name: `${PREFIX}model_load_seconds`,
      help: "Time to load a model into memory.",
      labelNames: ["model"],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    // Names as vLLM's (request_queue_time_seconds, time_per_output_token_seconds), llama-server's
    // (requests_deferred, kv_cache_usage_ratio) and OpenTelemetry GenAI's server metrics.
    this.queueTime = new Histogram({
      name: `${PREFIX}request_queue_time_seconds`,
      help: "Time a request waited for a free sequence of a local model (0 when one was free).",
      labelNames: ["model"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.deferred = new Counter({
      name: `${PREFIX}requests_deferred_total`,
      help: "Requests that found every sequence of the model busy (or others waiting) and had to queue.",
      labelNames: ["model"],
      registers,
    });
    this.timePerOutputToken = new Histogram({
      name: `${PREFIX}time_per_output_token_seconds`,
      help: "Decode time per generated token after the first, per request (inverse of generation_tokens_per_second).",
      labelNames: ["model", "variant"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1],
      registers,
    });
    this.prefixQueries = new Counter({
      name: `${PREFIX}prefix_cache_queries_total`,
      help: "Prompt tokens of local models' requests, looked up in the sequence's KV cache (as vLLM's prefix_cache_queries).",
      labelNames: ["model"],
      registers,
    });
    this.prefixHits = new Counter({
      name: `${PREFIX}prefix_cache_hits_total`,
      help: "Of those, the tokens the sequence already held and did not compute again (as vLLM's prefix_cache_hits).",
      labelNames: ["model"],
      registers,
    });
    this.promptCacheOps = new Counter({
      name: `${PREFIX}prompt_cache_operations_total`,
      help: "Conversation states of local models saved when their sequence was given away, restored from those, copied from another sequence, or dropped (least recently used, past prompt_cache.max_bytes).",
      labelNames: ["model", "operation"],
      registers,
    });
    new Gauge({
      name: `${PREFIX}prompt_cache_bytes`,
      help: "Bytes of saved conversation states per model (prompt_cache), in RAM.",
      labelNames: ["model"],
      registers,
      collect() {
        for (const m of models()) this.set({ model: m.model }, m.promptCacheBytes);
      },
    });
    new Gauge({
      name: `${PREFIX}kv_cache_usage_ratio`,
      help: "Tokens held in the model's KV cache (all its sequences) over what they can hold, 0..1.",
      labelNames: ["model"],
      registers,
      collect() {
        for (const m of models()) this.set({ model: m.model }, m.kvCacheUsage);
      },
    });
    new Gauge({
      name: `${PREFIX}models_loaded`,
      help: "Models loaded now.",
      registers,
      collect() {
        this.set(models().filter((m) => m.loaded).length);
      },
    });
    new Gauge({
      name: `${PREFIX}queue_depth`,
      help: "Requests waiting for a free sequence of the model.",
      labelNames: ["model"],
      registers,
      collect() {
        for (const m of models()) this.set({ model: m.model }, m.waiting);
      },
    });
    new Gauge({
      name: `${PREFIX}busy_sequences`,
      help: "Sequences of the model generating now.",
      labelNames: ["model"],
      registers,
      collect() {
        for (const m of models()) this.set({ model: m.model }, m.busy);
      },
    });
    this.fineTuneJobs = new Gauge({
      name: `${PREFIX}fine_tune_jobs`,
      help: "Fine-tuning jobs by status.",
      labelNames: ["status"],
      registers,
    });
    this.rollbacks = new Counter({
      name: `${PREFIX}rollbacks_total`,
      help: "Canary variants rolled back by a rule.",
      labelNames: ["experiment", "variant"],
      registers,
    });
    this.usageRecordsDropped = new Counter({
      name: `${PREFIX}usage_records_dropped_total`,
      help: "Usage records lost: the usage log's store (disk or Redis) refused them for longer than its memory buffer holds.",
      registers,
    });
  }

  observe(r: UsageRecord): void {
    const model = modelLabel(r.served_model ?? "unknown");
    const variant = r.variant ?? "none";
    const stream = r.stream ? "true" : "false";
    const operation = r.operation ?? "chat";
    this.requests.inc({ model, variant, operation, status: String(r.status) });
    if (r.prompt_tokens > 0) this.tokens.inc({ model, variant, operation, kind: "prompt" }, r.prompt_tokens);
    if (r.completion_tokens > 0)
      this.tokens.inc({ model, variant, operation, kind: "completion" }, r.completion_tokens);
    // Only answers are timed: a fast 400 or an abandoned stream says nothing about speed.
    if (outcomeOf(r) === "ok") {
      this.duration.observe({ model, variant, operation, stream }, r.latency_ms / 1000);
    }
    if (r.ttft_ms !== undefined) this.ttft.observe({ model, variant, stream }, r.ttft_ms / 1000);
    if (r.tokens_per_second !== undefined) {
      this.tokensPerSecond.observe({ model, variant }, r.tokens_per_second);
      if (r.tokens_per_second > 0) this.timePerOutputToken.observe({ model, variant }, 1 / r.tokens_per_second);
    }
    if (r.cache !== undefined) this.cache.inc({ result: r.cache });
    if (r.cached_prompt_tokens !== undefined) {
      this.prefixQueries.inc({ model }, r.prompt_tokens);
      this.prefixHits.inc({ model }, r.cached_prompt_tokens);
    }
  }

  queued(model: string, seconds: number, deferred: boolean): void {
    const label = modelLabel(model);
    this.queueTime.observe({ model: label }, seconds);
    if (deferred) this.deferred.inc({ model: label });
  }

  /** `count`: states dropped, else 1. */
  promptCache(model: string, operation: "saved" | "restored" | "copied" | "dropped", count: number): void {
    this.promptCacheOps.inc({ model: modelLabel(model), operation }, operation === "dropped" ? count : 1);
  }

  modelLoaded(model: string, seconds: number): void {
    this.loadSeconds.observe({ model: modelLabel(model) }, seconds);
  }
}

/** Fine-tuned models (`ft:…`, a namespace configured ids cannot use) share one label. */
export function modelLabel(model: string): string {
  return model.startsWith("ft:") ? "fine_tuned" : model;
}
