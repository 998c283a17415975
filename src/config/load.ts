// Reads models.yaml into a typed Config: YAML → zod (defaults applied) → values resolved for this
// machine and this file's folder. Every failure is a ConfigError naming file, line and field.
//
// Environment overrides (the caller reads MODELS_CONFIG to find the file itself):
//   HOST  overrides server.host    PORT  overrides server.port
// Containers set these rather than baking a second models.yaml.
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, isAbsolute, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import type { z } from "zod";
import { describeIssue, formatPath } from "../openai/issues.ts";
import type { RateLimit } from "../security/rate-limit.ts";
import type { RateLimitConfig } from "../security/rate-limiter.ts";
import { parseByteSize } from "./bytes.ts";
import { parseDurationMs } from "./duration.ts";
import { ConfigError, type ConfigProblem } from "./errors.ts";
import { type ExperimentSpec, type ExperimentStateConfig, resolveExperiments } from "./experiments.ts";
import {
  ConfigFile,
  type LlamaModelEntry,
  type OpenAIModelEntry,
  type PerMinute,
  type TenantLimits,
} from "./schema.ts";
import { knownKeys, suggestKey } from "./suggest.ts";
import { lineOfPath } from "./yaml-lines.ts";

export interface LlamaModelConfig extends Omit<LlamaModelEntry, "threads" | "sha256" | "keep_alive"> {
  /** keep_alive in milliseconds; undefined: stays loaded until evicted. */
  keep_alive_ms: number | undefined;
  /** Absolute file path, or an `hf:` URI left for the model loader to resolve. */
  path: string;
  threads: number;
  /** Lower-case hex, when pinned. */
  sha256: string | undefined;
  /** Where it is in the file, for problems found after parsing (the file, the memory it needs). */
  at: ModelPlace;
}

/** A model entry's index in `models` and the line of each of its fields (`a.b` for a nested one; of the entry when unset). */
export interface ModelPlace {
  index: number;
  line(field: string): number | undefined;
}

/** One configured model; a union once upstream providers join. */
/** An upstream model; durations in milliseconds, the API key read from the environment. */
export interface OpenAIModelConfig
  extends Omit<OpenAIModelEntry, "model" | "timeout" | "response_timeout" | "retry_backoff"> {
  /** The upstream's name for it (`model`, else the id). */
  model: string;
  /** The value of the `api_key_env` variable; undefined when unset or empty (createServices refuses that). */
  api_key: string | undefined;
  timeout_ms: number;
  response_timeout_ms: number;
  retry_backoff_ms: number;
}

export type ModelConfig = LlamaModelConfig | OpenAIModelConfig;

export function isLlamaModel(model: ModelConfig): model is LlamaModelConfig {
  return model.provider === "llama";
}

/** models.yaml with defaults applied and every value resolved. Keys keep the file's spelling. */
export interface Config {
  /** Absolute path of the file it came from. */
  file: string;
  server: { host: string; port: number };
  /** Bytes; undefined when unset, leaving the loader's own free-memory check as the only limit. */
  memory_budget: number | undefined;
  max_loaded_models: number;
  default_model: string | undefined;
  cache: CacheConfig;
  fine_tuning: FineTuningConfig;
  models: ModelConfig[];
  experiments: ExperimentSpec[];
  experiment_state: ExperimentStateConfig;
  usage_log: UsageLogConfig;
  limits: LimitsConfig;
  rate_limits: RateLimitsConfig;
  tenants: TenantsConfig;
  responses: { ttlMs: number; store: "file" | "redis"; url: string };
  metrics: { auth: "none" | "api" | "admin" };
}

export interface LimitsConfig {
  maxBodyBytes: number;
  maxUploadBytes: number;
  maxConcurrentUploads: number;
  bodyTimeoutMs: number;
}

export interface TenantLimitsConfig {
  storedBytes?: number | undefined;
  queuedJobs?: number | undefined;
  runningJobs?: number | undefined;
}

export interface TenantsConfig {
  /** Project name → its keys' ids and its own limits (else `limits`). */
  projects: Map<string, { keys: readonly string[]; limits: TenantLimitsConfig | undefined }>;
  limits: TenantLimitsConfig;
}

export interface RateLimitsConfig extends RateLimitConfig {
  store: "memory" | "redis";
  url: string;
}

export interface UsageLogConfig {
  store: "file" | "redis";
  url: string;
  maxRecords: number;
  maxBuffered: number;
}

export interface FineTuningConfig {
  /** REDIS_URL in the environment wins over the file. */
  redisUrl: string | undefined;
  threads: number;
}

export interface CacheConfig {
  store: "memory" | "redis";
  url: string | undefined;
  ttlMs: number;
  maxEntries: number;
  maxBytes: number;
  localCopy: boolean;
  mode: "deterministic" | "all" | "off";
  timeoutMs: number;
  scope: "tenant" | "global";
}

export type Env = Readonly<Record<string, string | undefined>>;

export function loadConfig(path: string, env: Env = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    const reason = err instanceof Error && "code" in err && err.code === "ENOENT" ? "file not found" : String(err);
    throw new ConfigError(path, [
      { line: undefined, field: undefined, message: `cannot read the configuration: ${reason}` },
    ]);
  }
  return parseConfig(text, path, env);
}

/**
 * As loadConfig, from text; `file` names it in errors and anchors relative model paths. The
 * environment is not read unless passed: tests and tools parse text, and a PORT set on a CI
 * machine must not leak into them.
 */
export function parseConfig(text: string, file: string, env: Env = {}): Config {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({
        line: e.linePos?.[0].line,
        field: undefined,
        message: `invalid YAML: ${(e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")}`,
      })),
    );
  }
  const parsed = ConfigFile.safeParse(doc.toJS({ maxAliasCount: 100 }) ?? {}, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(
      file,
      parsed.error.issues.flatMap((issue) => problemsOf(issue, doc, lines)),
    );
  }
  const place = (index: number): ModelPlace => ({
    index,
    line: (field) => lineOfPath(doc, lines, ["models", index, ...field.split(".")]),
  });
  return resolveConfig(parsed.data, resolve(file), env, place);
}

function problemsOf(
  issue: z.core.$ZodIssue,
  doc: ReturnType<typeof parseDocument>,
  lines: LineCounter,
): ConfigProblem[] {
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(ConfigFile, issue.path);
    return issue.keys.map((key) => {
      const path = [...issue.path, key];
      return {
        line: lineOfPath(doc, lines, path),
        field: formatPath(path),
        message: `unknown field${suggestKey(key, known)}`,
      };
    });
  }
  const described = describeIssue(issue);
  return [
    { line: lineOfPath(doc, lines, described.path), field: formatPath(described.path), message: described.message },
  ];
}

function resolveConfig(file: ConfigFile, absFile: string, env: Env, place: (index: number) => ModelPlace): Config {
  const dir = dirname(absFile);
  const threads = Math.max(1, availableParallelism() - 1);
  return {
    file: absFile,
    server: {
      host: env.HOST !== undefined && env.HOST !== "" ? env.HOST : file.server.host,
      port: env.PORT !== undefined && env.PORT !== "" ? portFromEnv(absFile, env.PORT) : file.server.port,
    },
    // The schema's pattern guarantees the parse succeeds.
    memory_budget: file.memory_budget === undefined ? undefined : parseByteSize(file.memory_budget),
    max_loaded_models: file.max_loaded_models,
    default_model: file.default_model,
    // The schema's patterns guarantee these parses succeed.
    cache: {
      store: file.cache.store,
      url: file.cache.url,
      ttlMs: parseDurationMs(file.cache.ttl) ?? 3_600_000,
      maxEntries: file.cache.max_entries,
      maxBytes: parseByteSize(file.cache.max_bytes) ?? 256 * 2 ** 20,
      localCopy: file.cache.local_copy,
      mode: file.cache.mode,
      timeoutMs: parseDurationMs(file.cache.timeout) ?? 50,
      scope: file.cache.scope,
    },
    fine_tuning: {
      redisUrl: env.REDIS_URL !== undefined && env.REDIS_URL !== "" ? env.REDIS_URL : file.fine_tuning.redis_url,
      // Training beside serving on a small machine: 2 threads keep it fast without starving requests.
      threads: file.fine_tuning.threads ?? Math.max(1, Math.min(2, availableParallelism())),
    },
    models: file.models.map((model, index): ModelConfig => {
      if (model.provider === "openai") return resolveOpenAIModel(model, env);
      return {
        ...model,
        at: place(index),
        path: isHuggingFaceUri(model.path) || isAbsolute(model.path) ? model.path : resolve(dir, model.path),
        finetune: model.finetune && {
          ...model.finetune,
          base: model.finetune.base === undefined ? undefined : resolve(dir, model.finetune.base),
        },
        threads: model.threads ?? threads,
        sha256: model.sha256?.toLowerCase(),
        keep_alive_ms: model.keep_alive === undefined ? undefined : parseDurationMs(model.keep_alive),
        speculative:
          model.speculative?.method === "draft"
            ? { ...model.speculative, model: resolve(dir, model.speculative.model) }
            : model.speculative,
        prompt_cache: model.prompt_cache && {
          ...model.prompt_cache,
          dir: model.prompt_cache.dir === undefined ? undefined : resolve(dir, model.prompt_cache.dir),
        },
      };
    }),
    experiments: resolveExperiments(file.experiments, (name) => modelIdOf(file, name)),
    // Replicas that share a cache share experiment state too, unless told otherwise.
    experiment_state: {
      store: file.experiment_state.store ?? (file.cache.store === "redis" ? "redis" : "file"),
      url: file.experiment_state.url ?? file.cache.url ?? "redis://127.0.0.1:6379",
      pollMs: parseDurationMs(file.experiment_state.poll) ?? 500,
    },
    // Replicas that share state share one usage log, so usage, results and rollbacks see them all.
    usage_log: {
      store:
        file.usage_log.store ??
        (file.cache.store === "redis" || file.experiment_state.store === "redis" ? "redis" : "file"),
      url: file.usage_log.url ?? file.experiment_state.url ?? file.cache.url ?? "redis://127.0.0.1:6379",
      maxRecords: file.usage_log.max_records,
      maxBuffered: file.usage_log.max_buffered,
    },
    // Replicas that share a cache share stored responses too, unless told otherwise.
    responses: {
      ttlMs: parseDurationMs(file.responses.ttl) ?? 30 * 86_400_000,
      store: file.responses.store ?? (file.cache.store === "redis" ? "redis" : "file"),
      url: file.responses.url ?? file.cache.url ?? "redis://127.0.0.1:6379",
    },
    limits: {
      maxBodyBytes: parseByteSize(file.limits.max_body) ?? 10 * 2 ** 20,
      maxUploadBytes: parseByteSize(file.limits.max_upload) ?? 100 * 2 ** 20,
      maxConcurrentUploads: file.limits.max_concurrent_uploads,
      bodyTimeoutMs: parseDurationMs(file.limits.body_timeout) ?? 30_000,
    },
    rate_limits: {
      default: file.rate_limits.default && perMinute(file.rate_limits.default),
      keys: new Map(Object.entries(file.rate_limits.keys).map(([id, limit]) => [id, perMinute(limit)])),
      // Replicas that share a cache share their rate counts too, unless told otherwise.
      store: file.rate_limits.store ?? (file.cache.store === "redis" ? "redis" : "memory"),
      url: file.rate_limits.url ?? file.cache.url ?? "redis://127.0.0.1:6379",
    },
    tenants: {
      projects: new Map(
        Object.entries(file.tenants.projects).map(([name, p]) => [
          name,
          { keys: p.keys, limits: p.limits && tenantLimits(p.limits) },
        ]),
      ),
      limits: tenantLimits(file.tenants.limits),
    },
    metrics: { auth: file.metrics.auth },
  };
}

function tenantLimits(limits: z.output<typeof TenantLimits>): TenantLimitsConfig {
  return {
    storedBytes: limits.stored_bytes === undefined ? undefined : parseByteSize(limits.stored_bytes),
    queuedJobs: limits.queued_jobs,
    runningJobs: limits.running_jobs,
  };
}

function perMinute(limit: z.output<typeof PerMinute>): RateLimit {
  return { requestsPerMinute: limit.requests_per_minute, tokensPerMinute: limit.tokens_per_minute };
}

function resolveOpenAIModel(entry: OpenAIModelEntry, env: Env): OpenAIModelConfig {
  const { model, timeout, response_timeout, retry_backoff, ...rest } = entry;
  const key = entry.api_key_env === undefined ? undefined : env[entry.api_key_env];
  return {
    ...rest,
    base_url: entry.base_url.replace(/\/+$/, ""),
    model: model ?? entry.id,
    api_key: key === undefined || key === "" ? undefined : key,
    // The schema's patterns guarantee these parses succeed.
    timeout_ms: parseDurationMs(timeout) ?? 60_000,
    response_timeout_ms: parseDurationMs(response_timeout) ?? 600_000,
    retry_backoff_ms: parseDurationMs(retry_backoff) ?? 250,
  };
}

/** The id of the model `name` (an id or alias) names; the schema checked that one does. */
function modelIdOf(file: ConfigFile, name: string): string {
  return file.models.find((m) => m.id === name || m.aliases.includes(name))?.id ?? name;
}

function portFromEnv(file: string, value: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65_535) {
    throw new ConfigError(file, [
      {
        line: undefined,
        field: "PORT",
        message: `expected a port number 0-65535 in the environment, got ${JSON.stringify(value)}`,
      },
    ]);
  }
  return port;
}

export function isHuggingFaceUri(path: string): boolean {
  return path.startsWith("hf:");
}
