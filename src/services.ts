// Builds everything a Switchyard app needs from a loaded config. No module-level
// state: a test builds as many independent services as it likes.
import { createHash } from "node:crypto";
import { statSync } from "node:fs";
import { join } from "node:path";
import type { Llama } from "node-llama-cpp";
import pino, { type Logger } from "pino";
import type { CacheMode } from "./cache/policy.ts";
import { ResponseCache } from "./cache/store.ts";
import type { Config, LlamaModelConfig } from "./config/load.ts";
import { type LocalModelSpec, ModelPool } from "./engine/pool.ts";
import { openRuntime } from "./engine/runtime.ts";
import type { TrainableModel } from "./finetune/runner.ts";
import { FineTuning } from "./finetune/service.ts";
import { LlamaProvider } from "./providers/llama.ts";
import type { ChatProvider } from "./providers/provider.ts";
import { createExperimentStore } from "./storage/experiments.ts";
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
  bodyLimitBytes?: number;
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
  apiKeys: readonly string[];
  adminApiKey: string | undefined;
  bodyLimitBytes: number;
  /** Files, fine-tuning jobs and the fine-tuned models they made. */
  fineTuning: FineTuning;
  fingerprint(modelId: string): string;
  /** Undefined when the cache is off. */
  cache: ResponseCache | undefined;
  cacheMode: CacheMode;
  /** Identifies a model's weights, for cache keys: its sha256 pin, else its file's size and mtime. */
  modelDigest(modelId: string): string;
  /** The temperature a request gets when it sets none (the model's sampling default, else OpenAI's 1). */
  defaultTemperature(modelId: string): number;
  health(): HealthStatus;
  /** Loads the `preload` models; health turns ready when it resolves. */
  preload(): Promise<void>;
  /** Stops reporting ready (before draining) and frees the models. */
  drain(): void;
  close(): Promise<void>;
}

export async function createServices(options: ServiceOptions): Promise<Services> {
  const { config } = options;
  const logger = options.logger ?? pino({ level: process.env.LOG_LEVEL ?? "info" });
  const llama = options.llama ?? (await openRuntime({ gpu: options.gpu ?? "auto" }));
  const ownsRuntime = options.llama === undefined;
  const specs = new Map(config.models.map((m) => [m.id, toSpec(m)]));
  const telemetry = new Telemetry({
    logger,
    dataDir: options.dataDir,
    prices: referencePrices(config.models),
    models: () => poolGauges(pool, config.models),
  });
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
        unloaded: (id) => logger.info({ model: id }, "model unloaded"),
      },
    },
  );
  const cache = config.cache.mode === "off" ? undefined : ResponseCache.create(config.cache, logger);
  const digests = new Map<string, string>();
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
  const preloadIds = config.models.filter((m) => m.preload).map((m) => m.id);
  const configured = new Map(config.models.map((m) => [m.id, m]));
  const fineTuning = new FineTuning({
    dataDir: options.dataDir,
    llama,
    logger,
    threads: config.fine_tuning.threads,
    redisUrl: config.fine_tuning.redisUrl,
    trainable: (id) => trainableModel(configured.get(id)),
    resolveModel: (name) => catalog.find(name)?.id,
    serving: {
      // A fine-tuned model is served like its base (context, threads, sampling), from its own file.
      serve: (record) => {
        const base = specs.get(record.base);
        if (!base || catalog.find(record.id)) return false;
        pool.addSpec({ ...base, id: record.id, path: record.path, sha256: undefined });
        catalog.add({ id: record.id, provider: "llama", aliases: [], ownedBy: "switchyard", created: record.created });
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

  return {
    catalog,
    traffic,
    providers: { llama: new LlamaProvider(llama, pool) },
    pool,
    logger,
    telemetry,
    cache,
    cacheMode: config.cache.mode,
    modelDigest(id) {
      let digest = digests.get(id);
      if (digest === undefined) {
        digest = fileDigest(pool.spec(id));
        digests.set(id, digest);
      }
      return digest;
    },
    defaultTemperature: (id) => pool.spec(id)?.sampling.temperature ?? 1,
    apiKeys: options.apiKeys ?? [],
    adminApiKey: options.adminApiKey,
    bodyLimitBytes: options.bodyLimitBytes ?? 10 * 1024 * 1024,
    fineTuning,
    fingerprint: (id) =>
      `fp_${createHash("sha256")
        .update(`${id}\0${pool.spec(id)?.path ?? ""}`)
        .digest("hex")
        .slice(0, 10)}`,
    health: () => ({
      ready: state === "ok",
      status: state,
      models: config.models.map((m) => ({ id: m.id, loaded: pool.isLoaded(m.id) })),
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
    },
    async close() {
      state = "draining";
      // First: a training job stops (and resumes at the next start) before the runtime goes.
      await fineTuning.close();
      await pool.close();
      // After the pool: requests cut short by it still get their records written.
      await telemetry.close();
      await traffic.close();
      await cache?.close();
      if (ownsRuntime) await llama.dispose();
    },
  };
}

function trainableModel(m: LlamaModelConfig | undefined): TrainableModel | undefined {
  if (!m?.finetune) return undefined;
  return { id: m.id, path: m.path, chatTemplate: m.chat_template, finetune: m.finetune };
}

function fileDigest(spec: LocalModelSpec | undefined): string {
  if (!spec) return "unknown";
  if (spec.sha256) return spec.sha256;
  try {
    const stat = statSync(spec.path);
    return `${spec.path}:${stat.size}:${Math.floor(stat.mtimeMs)}`;
  } catch {
    return spec.path;
  }
}

function toSpec(m: LlamaModelConfig): LocalModelSpec {
  return {
    id: m.id,
    path: m.path,
    contextSize: m.context_size,
    parallel: m.parallel,
    threads: m.threads,
    batchSize: m.batch_size,
    gpuLayers: m.gpu_layers,
    sha256: m.sha256,
    chatTemplate: m.chat_template,
    queue: { maxWaiting: m.queue.max_waiting, timeoutMs: m.queue.timeout_ms },
    sampling: {
      temperature: m.sampling?.temperature,
      topP: m.sampling?.top_p,
      topK: m.sampling?.top_k,
      minP: m.sampling?.min_p,
      repeatPenalty: m.sampling?.repeat_penalty,
    },
    maxTokens: m.max_tokens,
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
    };
  });
}

function toServed(m: LlamaModelConfig): ServedModel {
  let created = 0;
  try {
    created = Math.floor(statSync(m.path).mtimeMs / 1000);
  } catch {
    // hf: URIs and files not downloaded yet have no date until they are loaded.
  }
  return { id: m.id, provider: m.provider, aliases: m.aliases, ownedBy: m.owned_by ?? "switchyard", created };
}
