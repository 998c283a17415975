// Builds everything a Roundhouse app needs from a loaded config. No module-level
// state: a test builds as many independent services as it likes.
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Llama } from "node-llama-cpp";
import pino, { type Logger } from "pino";
import { ResponseCache } from "./cache/store.ts";
import { parseByteSize } from "./config/bytes.ts";
import { ConfigError } from "./config/errors.ts";
import { type Config, isLlamaModel, type LlamaModelConfig, type ModelConfig } from "./config/load.ts";
import { checkLocalModels } from "./engine/model-check.ts";
import { type LoadedModel, type LocalModelSpec, ModelPool } from "./engine/pool.ts";
import { openRuntime } from "./engine/runtime.ts";
import type { TrainableModel } from "./finetune/runner.ts";
import { FineTuning } from "./finetune/service.ts";
import { LlamaProvider } from "./providers/llama.ts";
import { OpenAIProvider, type UpstreamModelSpec } from "./providers/openai.ts";
import type { ChatProvider } from "./providers/provider.ts";
import { ApiKeys } from "./security/api-keys.ts";
import { ConcurrencyLimit } from "./security/concurrency.ts";
import { RateLimiter } from "./security/rate-limiter.ts";
import { Tenants } from "./security/tenants.ts";
import { Pipeline } from "./serve/pipeline.ts";
import { createExperimentStore } from "./storage/experiments.ts";
import { MemoryRateCounters, RedisRateCounters } from "./storage/rate-counters.ts";
import { ResponseStore } from "./storage/responses.ts";
import type { ModelGaugeSample } from "./telemetry/metrics.ts";
import type { ReferencePrice } from "./telemetry/reference-price.ts";
import { Telemetry } from "./telemetry/telemetry.ts";
import { ModelCatalog, type ServedModel } from "./traffic/catalog.ts";
import { Traffic } from "./traffic/traffic.ts";

export interface ServiceOptions {
  config: Config;
  dataDir: string;
  /** Share one runtime between several apps (tests); opened from `gpu` otherwise. */
  llama?: Llama;
  gpu?: "auto" | false;
  logger?: Logger;
  /** Bearer tokens accepted on /v1; empty leaves the API open. */
  apiKeys?: readonly string[];
  /** Bearer token for /admin; unset leaves the admin routes open. */
  adminApiKey?: string | undefined;
  /** Override models.yaml `limits.max_body` (tests). */
  bodyLimitBytes?: number;
  /** Override models.yaml `limits.max_upload` (tests). */
  uploadLimitBytes?: number;
  /** Memory a fine-tuning trainer may use; the machine's when unset (tests). */
  trainerMemoryBytes?: number;
}

export interface HealthStatus {
  ready: boolean;
  status: "starting" | "ok" | "draining" | "failed";
  models: { id: string; loaded: boolean }[];
}

export interface Services {
  catalog: ModelCatalog;
  /** Experiments, fallbacks, rollbacks, feedback. */
  traffic: Traffic;
  providers: Record<ServedModel["provider"], ChatProvider>;
  pool: ModelPool;
  logger: Logger;
  telemetry: Telemetry;
  /** Who a bearer token is; only the keys' digests are kept. */
  keys: ApiKeys;
  /** Undefined when models.yaml sets no rate limits. */
  rateLimiter: RateLimiter | undefined;
  bodyLimitBytes: number;
  uploadLimitBytes: number;
  /** Who may read /metrics (metrics.auth). */
  metricsAuth: "none" | "api" | "admin";
  /** Longest time to receive a request (limits.body_timeout), for the HTTP server. */
  bodyTimeoutMs: number;
  /** Uploads in flight per caller (limits.max_concurrent_uploads). */
  uploads: ConcurrencyLimit;
  /** Files, fine-tuning jobs and the fine-tuned models they made. */
  fineTuning: FineTuning;
  /** Undefined when the cache is off. */
  cache: ResponseCache | undefined;
  /** Route → traffic → cache → provider, telemetry wrapped around: what every endpoint serves through. */
  pipeline: Pipeline;
  /** Stored responses of the Responses API. */
  responses: ResponseStore;
  health(): HealthStatus;
  /** Loads the `preload` models; health turns ready when it resolves. */
  preload(): Promise<void>;
  /** Stops reporting ready (before draining) and frees the models. */
  drain(): void;
  close(): Promise<void>;
}

export async function createServices(options: ServiceOptions): Promise<Services> {
  const { config } = options;
  // Checked before anything is opened: a missing key is a configuration error, not a 401 later.
  const upstreamSpecs = upstreamModels(config);
  const { logger, stopFlushing } = options.logger ? { logger: options.logger, stopFlushing: () => {} } : stdoutLogger();
  const llama = options.llama ?? (await openRuntime({ gpu: options.gpu ?? "auto" }));
  const ownsRuntime = options.llama === undefined;
  const local = config.models.filter(isLlamaModel);
  // Before anything listens: a missing file, a wrong digest or a size that cannot fit fails here.
  const checked = await checkLocalModels(llama, config.file, local, {
    memoryBudget: config.memory_budget,
    warn: (message) => logger.warn(message),
  });
  const specs = new Map(local.map((m) => [m.id, toSpec(m, checked.get(m.id)?.contextSize ?? m.context_size)]));
  const telemetry = new Telemetry({
    logger,
    dataDir: options.dataDir,
    usageStore: config.usage_log,
    prices: referencePrices(local),
    models: () => poolGauges(pool, local),
    keyed: (options.apiKeys ?? []).some((k) => k !== ""),
    listedKeys: new Set(config.rate_limits.keys.keys()),
  });
  const upstream = new OpenAIProvider({ models: upstreamSpecs, tokens: telemetry.tokens, logger });
  const pool = new ModelPool(
    llama,
    specs,
    { memoryBudget: config.memory_budget, maxLoadedModels: config.max_loaded_models },
    {
      modelsDir: join(options.dataDir, "models"),
      events: {
        loaded: (id, seconds) => {
          logger.info({ model: id, seconds }, "model loaded");
          telemetry.modelLoaded(id, seconds, (text) => pool.get(id)?.model.tokenize(text).length ?? 0);
        },
        unloaded: (id, reason) => logger.info({ model: id, reason }, "model unloaded"),
        queued: (id, seconds, deferred) => telemetry.metrics.queued(id, seconds, deferred),
        promptCache: (id, operation, count) => telemetry.metrics.promptCache(id, operation, count),
      },
    },
  );
  const cache = config.cache.mode === "off" ? undefined : ResponseCache.create(config.cache, logger);
  const catalog = new ModelCatalog(config.models.map(toServed), config.default_model);
  const traffic = new Traffic({
    experiments: config.experiments,
    catalog,
    store: createExperimentStore({ ...config.experiment_state, dataDir: options.dataDir, logger }),
    usage: telemetry.usage,
    rollbacks: telemetry.metrics.rollbacks,
    logger,
    pollMs: config.experiment_state.pollMs,
  });
  await traffic.start();
  telemetry.onRecord((record) => traffic.completed(record));
  // With a shared usage log the rollback rules judge every replica's traffic, not a share of it.
  if (traffic.judgesRollbacks()) {
    telemetry.usage.follow?.((record) => traffic.completedElsewhere(record), config.experiment_state.pollMs);
  }
  const tenants = new Tenants(config.tenants);
  const rateLimiter = createRateLimiter(config, logger);
  if (rateLimiter) {
    telemetry.onRecord((record) => {
      rateLimiter
        .used(record.key_id, record.prompt_tokens + record.completion_tokens)
        .catch((err: unknown) => logger.warn({ err }, "counting tokens for the rate limit failed"));
    });
  }
  const preloadIds = local.filter((m) => m.preload).map((m) => m.id);
  const configured = new Map(local.map((m) => [m.id, m]));
  const fineTuning = new FineTuning({
    dataDir: options.dataDir,
    llama,
    logger,
    threads: config.fine_tuning.threads,
    redisUrl: config.fine_tuning.redisUrl,
    memoryLimitBytes: options.trainerMemoryBytes,
    tenants,
    trainable: (id) => trainableModel(configured.get(id), config.file),
    resolveModel: (name) => catalog.find(name)?.id,
    serving: {
      // A fine-tuned model is served like its base (context, threads, sampling), from its own file.
      serve: (record) => {
        const base = specs.get(record.base);
        if (!base || catalog.find(record.id)) return false;
        pool.addSpec({ ...base, id: record.id, path: record.path, sha256: undefined });
        catalog.add({ id: record.id, provider: "llama", aliases: [], ownedBy: "roundhouse", created: record.created });
        return true;
      },
      unserve: async (id) => {
        catalog.remove(id);
        await pool.removeSpec(id);
      },
    },
    gauge: (counts) => {
      for (const [status, n] of Object.entries(counts)) telemetry.metrics.fineTuneJobs.set({ status }, n);
    },
  });
  await fineTuning.start();
  let state: HealthStatus["status"] = preloadIds.length === 0 ? "ok" : "starting";

  const providers = { llama: new LlamaProvider(llama, pool), openai: upstream };
  const responses =
    config.responses.store === "redis"
      ? ResponseStore.redis(config.responses.url, config.responses.ttlMs)
      : ResponseStore.files(options.dataDir, config.responses.ttlMs);
  const pipeline = new Pipeline({
    traffic,
    providers,
    cache,
    cacheMode: config.cache.mode,
    cacheScope: config.cache.scope,
    isServed: (name) => catalog.find(name) !== undefined,
    ensureServed: (name) => fineTuning.ensureServed(name),
    visible: (id, viewer) => fineTuning.modelVisible(id, viewer),
  });

  return {
    catalog,
    traffic,
    providers,
    pipeline,
    responses,
    pool,
    logger,
    telemetry,
    cache,
    keys: new ApiKeys(options.apiKeys ?? [], options.adminApiKey, tenants),
    rateLimiter,
    bodyLimitBytes: options.bodyLimitBytes ?? config.limits.maxBodyBytes,
    uploadLimitBytes: options.uploadLimitBytes ?? config.limits.maxUploadBytes,
    uploads: new ConcurrencyLimit(config.limits.maxConcurrentUploads),
    bodyTimeoutMs: config.limits.bodyTimeoutMs,
    metricsAuth: config.metrics.auth,
    fineTuning,
    health: () => ({
      ready: state === "ok",
      status: state,
      models: local.map((m) => ({ id: m.id, loaded: pool.isLoaded(m.id) })),
    }),
    async preload() {
      try {
        for (const id of preloadIds) await pool.load(id);
        if (state === "starting") state = "ok";
      } catch (err) {
        state = "failed";
        throw err;
      }
    },
    drain() {
      state = "draining";
      // A model still loading would hold the shutdown for as long as the load takes.
      pool.stopLoading();
    },
    async close() {
      state = "draining";
      // First: a training job stops (and resumes at the next start) before the runtime goes.
      await fineTuning.close();
      await pool.close();
      await upstream.close();
      // After the pool: requests cut short by it still get their records written.
      await telemetry.close();
      await traffic.close();
      await rateLimiter?.close();
      await cache?.close();
      await responses.close();
      if (ownsRuntime) await llama.dispose();
      stopFlushing();
    },
  };
}

/** Bytes of log lines gathered before one write to stdout. */
export const LOG_BUFFER_BYTES = 4096;
/** How far the log may lag on a quiet server, whose lines do not fill the buffer. */
const LOG_FLUSH_MS = 1000;

interface StdoutLogger {
  logger: Logger;
  stopFlushing(): void;
}

/**
 * The server's own logger: JSON lines to stdout through an asynchronous, buffered destination,
 * so a request's line is a buffer append rather than a write(2) per line on the request's
 * time. A timer writes out what a quiet server leaves in the buffer; pino writes the rest
 * synchronously when the process exits, and main.ts flushes it at shutdown. A SIGKILL loses
 * what the buffer held (at most LOG_FLUSH_MS of lines).
 */
function stdoutLogger(): StdoutLogger {
  const logger = pino(
    { level: process.env.LOG_LEVEL ?? "info" },
    pino.destination({ sync: false, minLength: LOG_BUFFER_BYTES }),
  );
  const timer = setInterval(() => logger.flush(), LOG_FLUSH_MS);
  // The timer alone must not keep the process alive.
  timer.unref();
  return { logger, stopFlushing: () => clearInterval(timer) };
}

function createRateLimiter(config: Config, logger: Logger): RateLimiter | undefined {
  const limits = config.rate_limits;
  if (limits.default === undefined && limits.keys.size === 0) return undefined;
  const counters = limits.store === "redis" ? new RedisRateCounters(limits.url, logger) : new MemoryRateCounters();
  return new RateLimiter(limits, counters);
}

/** What fine-tuning needs of a configured model; a command trainer runs in the folder of models.yaml. */
export function trainableModel(m: LlamaModelConfig | undefined, configFile: string): TrainableModel | undefined {
  if (!m?.finetune) return undefined;
  const { trainer, ...finetune } = m.finetune;
  return {
    id: m.id,
    path: m.path,
    chatTemplate: m.chat_template,
    finetune: {
      ...finetune,
      trainer: trainer === "llama-finetune" ? undefined : { command: trainer.command, cwd: dirname(configFile) },
    },
  };
}

function toSpec(m: LlamaModelConfig, contextSize: number): LocalModelSpec {
  return {
    id: m.id,
    path: m.path,
    contextSize,
    parallel: m.parallel,
    threads: m.threads,
    batchSize: m.batch_size,
    flashAttention: m.flash_attention,
    gpuLayers: m.gpu_layers,
    sha256: m.sha256,
    chatTemplate: m.chat_template,
    toolFormat: m.tool_format,
    reasoning: m.reasoning,
    queue: { maxWaiting: m.queue.max_waiting, timeoutMs: m.queue.timeout_ms },
    sampling: {
      temperature: m.sampling?.temperature,
      topP: m.sampling?.top_p,
      topK: m.sampling?.top_k,
      minP: m.sampling?.min_p,
      repeatPenalty: m.sampling?.repeat_penalty,
    },
    maxTokens: m.max_tokens,
    operations: m.operations,
    keepAliveMs: m.keep_alive_ms,
    speculative:
      m.speculative?.method === "draft"
        ? {
            method: "draft",
            path: m.speculative.model,
            maxTokens: m.speculative.max_tokens,
            minConfidence: m.speculative.min_confidence,
          }
        : m.speculative && { method: m.speculative.method, maxTokens: m.speculative.max_tokens },
    promptCache: m.prompt_cache
      ? { maxBytes: parseByteSize(m.prompt_cache.max_bytes) ?? 0, dir: m.prompt_cache.dir }
      : undefined,
  };
}

function referencePrices(models: readonly LlamaModelConfig[]): Map<string, ReferencePrice> {
  return new Map(
    models.flatMap((m): [string, ReferencePrice][] => (m.reference_price ? [[m.id, m.reference_price]] : [])),
  );
}

/** Every configured model, loaded or not, so a gauge reads 0 rather than vanishing on unload. */
function poolGauges(pool: ModelPool, models: readonly LlamaModelConfig[]): ModelGaugeSample[] {
  return models.map((m) => {
    const loaded = pool.get(m.id);
    return {
      model: m.id,
      loaded: loaded !== undefined,
      busy: loaded?.slots.busy ?? 0,
      waiting: loaded?.slots.waiting ?? 0,
      kvCacheUsage: loaded ? kvCacheUsage(loaded) : 0,
      promptCacheBytes: loaded?.promptCache?.bytes ?? 0,
    };
  });
}

/** Tokens the model's sequences hold now, over what their context can hold (llama-server's kv_cache_usage_ratio). */
function kvCacheUsage(loaded: LoadedModel): number {
  const held = loaded.sequences.reduce((sum, s) => sum + s.nextTokenIndex, 0);
  return held / (loaded.contextSize * loaded.sequences.length);
}

/** The upstream models, each with its API key; a key named but missing from the environment is refused. */
function upstreamModels(config: Config): UpstreamModelSpec[] {
  const specs: UpstreamModelSpec[] = [];
  const missing: { index: number; env: string }[] = [];
  config.models.forEach((m, index) => {
    if (m.provider !== "openai") return;
    if (m.api_key_env !== undefined && m.api_key === undefined) missing.push({ index, env: m.api_key_env });
    specs.push({
      id: m.id,
      baseUrl: m.base_url,
      model: m.model,
      apiKey: m.api_key,
      headers: m.headers,
      timeoutMs: m.timeout_ms,
      responseTimeoutMs: m.response_timeout_ms,
      retries: m.retries,
      retryBackoffMs: m.retry_backoff_ms,
      operations: m.operations,
      responses: m.responses,
    });
  });
  if (missing.length > 0) {
    throw new ConfigError(
      config.file,
      missing.map(({ index, env }) => ({
        line: undefined,
        field: `models[${index}].api_key_env`,
        message: `the environment variable ${env} holding this model's API key is not set (or empty)`,
      })),
    );
  }
  return specs;
}

function toServed(m: ModelConfig): ServedModel {
  if (m.provider === "openai") {
    // An upstream model has no file to date it by: 0 says "unknown".
    return {
      id: m.id,
      provider: "openai",
      aliases: m.aliases,
      ownedBy: m.owned_by ?? new URL(m.base_url).hostname,
      created: 0,
    };
  }
  let created = 0;
  try {
    created = Math.floor(statSync(m.path).mtimeMs / 1000);
  } catch {
    // hf: URIs and files not downloaded yet have no date until they are loaded.
  }
  return { id: m.id, provider: m.provider, aliases: m.aliases, ownedBy: m.owned_by ?? "roundhouse", created };
}
