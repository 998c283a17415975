// The models.yaml schema. Strict objects throughout: a misspelt field is an error with a line
// number, never a silently ignored setting. Values that depend on the machine or on the file's
// location (threads, paths, byte sizes) are resolved by load.ts, so this schema stays a pure
// description that z.toJSONSchema can turn into models.schema.json for editors.
import { z } from "zod";
import { SIZE_PATTERN } from "./bytes.ts";
import { DURATION_PATTERN } from "./duration.ts";
import { checkExperiments } from "./experiments.ts";

/** Ids appear in URLs, metrics labels and file names: keep them to a safe alphabet. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]+$/;

export const ModelId = z
  .string()
  .min(1)
  .max(128)
  .regex(ID_PATTERN, { error: "expected only letters, digits, '.', '_', ':' and '-'" });

/**
 * A configured model's own name: `ft:` names belong to fine-tuned models, which are registered at
 * run time; a configured one could shadow (or be shadowed by) a customer's model.
 */
const ConfiguredModelId = ModelId.refine((id) => !id.startsWith("ft:"), {
  error: "names beginning with 'ft:' are reserved for fine-tuned models; choose another id",
});

const ByteSize = z.union([
  z.int().positive(),
  z.string().regex(SIZE_PATTERN, { error: 'expected a size such as "8GiB", "512MB" or a number of bytes' }),
]);

export const Sampling = z
  .strictObject({
    temperature: z.number().min(0).max(2).optional(),
    top_p: z.number().min(0).max(1).optional(),
    top_k: z.int().min(0).optional(),
    min_p: z.number().min(0).max(1).optional(),
    repeat_penalty: z.number().min(0).optional(),
  })
  .describe("Sampling defaults for requests that do not set the parameter themselves.");

export const Queue = z
  .strictObject({
    max_waiting: z.int().min(0).default(32).describe("Requests allowed to wait for a free sequence; beyond it, 429."),
    timeout_ms: z
      .int()
      .min(1)
      .default(30_000)
      .describe("How long a request may wait for a sequence before it is refused."),
  })
  .describe("The wait queue in front of the model's sequences.");

export const ReferencePrice = z
  .strictObject({
    model: z.string().min(1).describe("A priced API model, e.g. gpt-4o-mini; its tiktoken encoding counts the tokens."),
    input_per_1m: z.number().min(0).describe("US dollars per million prompt tokens."),
    output_per_1m: z.number().min(0).describe("US dollars per million completion tokens."),
  })
  .describe("What this model's traffic would cost on a priced API model: /admin/usage reports it as cost avoided.");

export const FineTune = z
  .strictObject({
    base: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The trainable F32 GGUF of this model, relative to this file or absolute; without it the F32 is derived from `path` with llama-quantize --allow-requantize and cached under DATA_DIR.",
      ),
    quantize: z.enum(["Q8_0", "Q4_0", "F32"]).default("Q8_0").describe("Type the fine-tuned model is served as."),
    learning_rate: z
      .number()
      .positive()
      .default(1e-3)
      .describe("Learning rate at learning_rate_multiplier 1 (llama-finetune's AdamW)."),
    context: z
      .int()
      .min(16)
      .default(128)
      .describe(
        "Tokens per optimizer step. llama.cpp pads it to a multiple of 256 for the training window (windows step by half of that), and a dataset must hold at least 1.5 windows.",
      ),
    trainer: z
      .union([
        z.literal("llama-finetune"),
        z.strictObject({
          command: z
            .array(z.string().min(1))
            .min(1)
            .describe("The program and its arguments, run in the folder of this file once per epoch."),
        }),
      ])
      .default("llama-finetune")
      .describe(
        "Who trains: llama.cpp's llama-finetune (built by npm run tools), or {command: [...]}, any program that follows the trainer contract (README: your own trainer), e.g. a TRL script on a GPU worker.",
      ),
  })
  .describe("Fine-tuning jobs may train this model (POST /v1/fine_tuning/jobs).");

/** What clients may ask of a model; each is one endpoint family. */
export const OPERATIONS = ["chat", "completions", "embeddings", "rerank"] as const;
export type Operation = (typeof OPERATIONS)[number];

/** What a local model serves unless models.yaml says: reranking needs a reranker GGUF, so it is asked for by name. */
export const LOCAL_DEFAULT_OPERATIONS = ["chat", "completions", "embeddings"] as const;

const LocalOperations = z
  .array(z.enum(OPERATIONS))
  .min(1)
  .optional()
  .describe(
    "What the model serves: chat (/v1/chat/completions), completions (/v1/completions), embeddings (/v1/embeddings), rerank (/v1/rerank, a reranker GGUF only: one with a classification head). Default: chat, completions and embeddings; an embedding model lists only embeddings, a reranker only rerank, and asking either for a chat is a 400.",
  );

const Operations = z
  .array(z.enum(OPERATIONS))
  .min(1)
  .optional()
  .describe(
    "What the model serves: chat, completions, embeddings, rerank (/v1/rerank). Default: all four (the upstream judges each request).",
  );

export const Duration = z.union([
  z.number().min(0),
  z.string().regex(DURATION_PATTERN, { error: 'expected a duration such as "90s", "5m", "1h" or a number of seconds' }),
]);

export const LlamaModel = z
  .strictObject({
    id: ConfiguredModelId.describe("The public model name clients send as `model`."),
    provider: z.literal("llama").describe("Served in-process by node-llama-cpp."),
    path: z
      .string()
      .min(1)
      .describe("GGUF file, relative to this file's folder or absolute, or an `hf:` URI (hf:user/repo/file.gguf)."),
    aliases: z.array(ConfiguredModelId).default([]).describe("Other names that resolve to this model."),
    context_size: z
      .int()
      .min(16)
      .default(2048)
      .describe(
        "Context window in tokens; at most the context the model was trained on, unless allow_context_overflow.",
      ),
    allow_context_overflow: z
      .boolean()
      .default(false)
      .describe(
        "Keep a context_size above the model's trained context (quality degrades past it) instead of lowering it.",
      ),
    parallel: z
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe("Sequences decoded together; concurrent requests beyond it wait."),
    threads: z.int().min(1).optional().describe("CPU threads; default max(1, cores - 1)."),
    batch_size: z.int().min(1).optional().describe("Prompt-processing batch size in tokens."),
    flash_attention: z
      .union([z.literal("auto"), z.boolean()])
      .default("auto")
      .describe(
        "Flash attention: auto (on a GPU, llama.cpp uses it where the device supports it, as llama-server's default; on the CPU the same, except off for models whose attention heads are narrower than 64, where the CPU kernel is slower), true or false.",
      ),
    gpu_layers: z
      .union([z.enum(["auto", "max"]), z.int().min(0)])
      .default("auto")
      .describe('Layers to offload to the GPU: "auto", "max" or a count.'),
    preload: z.boolean().default(false).describe("Load at start instead of on first use."),
    keep_alive: Duration.optional().describe(
      'How long the model stays loaded after its last request ("5m", "1h"; 0: unloaded as soon as it is idle), as Ollama\'s keep_alive; unset: until evicted for another model or the server stops. A model with requests in flight is never unloaded.',
    ),
    prompt_cache: z
      .union([
        z.literal(false),
        z.strictObject({
          max_bytes: ByteSize.default("2GiB").describe(
            "Most bytes of saved conversation states (least recently used go first). They live in RAM (/dev/shm) and count against the machine's memory.",
          ),
          dir: z
            .string()
            .min(1)
            .optional()
            .describe(
              "Folder for them, relative to this file's folder or absolute; default /dev/shm where it has room for max_bytes, else the temp folder.",
            ),
        }),
      ])
      .prefault({})
      .describe(
        "Keeps a conversation's KV state when its sequence is given to another request and loads it back when the conversation returns, as llama-server's --cache-ram; false: off.",
      ),
    speculative: z
      .discriminatedUnion("method", [
        z.strictObject({
          method: z
            .literal("prompt_lookup")
            .describe(
              "prompt_lookup: guess the next tokens from where the reply's last tokens appear in the prompt, and check the guesses in one batch (pays when replies copy their input: RAG quotes, code edits).",
            ),
          max_tokens: z.int().min(1).max(16).default(3).describe("Tokens guessed per step."),
        }),
        z.strictObject({
          method: z
            .literal("draft")
            .describe(
              "draft: a smaller model of the same vocabulary (Qwen2.5-0.5B for Qwen2.5-7B) drafts the next tokens and this model checks them in one batch, as llama-server's --model-draft; pays where a decode is bound by reading the weights (GPUs, large models).",
            ),
          model: z
            .string()
            .min(1)
            .describe("The draft model's GGUF file (relative paths are read from this file's folder)."),
          max_tokens: z.int().min(1).max(64).default(16).describe("Tokens drafted per step, at most."),
          min_confidence: z
            .number()
            .min(0)
            .max(1)
            .default(0.6)
            .describe("The draft stops at a token it gives less than this probability."),
        }),
      ])
      .optional()
      .describe("Speculative decoding; off unless set (it costs time when the guesses miss)."),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, { error: "expected 64 hexadecimal digits" })
      .optional()
      .describe("Refuse to load the file unless its sha256 matches."),
    sampling: Sampling.optional(),
    chat_template: z.string().min(1).optional().describe("Jinja chat template overriding the one in the GGUF."),
    tool_format: z
      .enum(["auto", "native", "generic", "hermes", "qwen3", "llama3", "mistral", "harmony", "deepseek-r1"])
      .default("auto")
      .describe(
        "Tool calls: auto (the chat template's own format when it has one, else generic JSON), native (fail unless it has one), generic, or a family.",
      ),
    reasoning: z
      .enum(["auto", "hide", "none"])
      .default("auto")
      .describe(
        "Thoughts (<think>, Harmony analysis): auto returns them as reasoning_content, hide parses them out and drops them, none leaves them in the text (between <think> tags for the families that write them).",
      ),
    max_tokens: z.int().min(1).optional().describe("Cap on generated tokens per request."),
    queue: Queue.prefault({}),
    owned_by: z.string().min(1).optional().describe('`owned_by` in /v1/models; default "roundhouse".'),
    reference_price: ReferencePrice.optional(),
    finetune: FineTune.optional(),
    operations: LocalOperations,
  })
  .describe("A local GGUF model.");

/** Headers Roundhouse sets itself on upstream requests; a configured one would break the request. */
export const RESERVED_UPSTREAM_HEADERS = ["host", "content-length", "content-type", "transfer-encoding", "connection"];

export const OpenAIModel = z
  .strictObject({
    id: ModelId.describe("The public model name clients send as `model`."),
    provider: z
      .literal("openai")
      .describe(
        "Served by an upstream OpenAI-compatible server: OpenAI, vLLM, llama-server, Ollama, another Roundhouse.",
      ),
    base_url: z
      .url({ protocol: /^https?$/, error: "expected an http:// or https:// URL such as https://api.openai.com/v1" })
      .describe(
        "The upstream API's base URL, up to and including the version: https://api.openai.com/v1, http://gpu-1:8000/v1.",
      ),
    model: z.string().min(1).optional().describe("The name the upstream knows the model by; default: id."),
    api_key_env: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "expected the name of an environment variable, e.g. OPENAI_API_KEY" })
      .optional()
      .describe(
        "Name of the environment variable holding the upstream's API key, sent as `Authorization: Bearer`. The key itself never goes in this file.",
      ),
    headers: z
      .record(z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { error: "expected an HTTP header name" }), z.string())
      .default({})
      .describe("Extra headers sent with every request, e.g. OpenAI-Organization or a gateway's own key."),
    timeout: Duration.default("60s").describe(
      "Longest wait to connect, for a stream to begin and between two streamed chunks; past it: 504, or the variant's fallback when nothing was sent yet.",
    ),
    response_timeout: Duration.default("10m").describe(
      "Longest wait for a whole JSON answer (a client that asked for no stream gets none from the upstream either, and the upstream sends nothing until it has finished); past it: 504, or the variant's fallback.",
    ),
    retries: z
      .int()
      .min(0)
      .max(10)
      .default(2)
      .describe(
        "Further attempts after a connection failure or a 429, 502, 503 or 504, while nothing has been streamed yet.",
      ),
    retry_backoff: Duration.default("250ms").describe(
      "Wait before the first retry, doubling with each next one (with jitter); the upstream's Retry-After wins when it sends one.",
    ),
    aliases: z.array(ModelId).default([]).describe("Other names that resolve to this model."),
    owned_by: z.string().min(1).optional().describe("`owned_by` in /v1/models; default: the upstream's host name."),
    operations: Operations,
    responses: z
      .enum(["auto", "native", "chat"])
      .default("auto")
      .describe(
        "How /v1/responses reaches it: native passes the request through to the upstream's own /v1/responses, as sent; chat translates it to chat completions and the answer back; auto tries native once and keeps to chat if the upstream has no /v1/responses (404, 405 or 501).",
      ),
  })
  .superRefine((model, ctx) => {
    for (const name of Object.keys(model.headers)) {
      const lower = name.toLowerCase();
      if (RESERVED_UPSTREAM_HEADERS.includes(lower)) {
        ctx.addIssue({ code: "custom", path: ["headers", name], message: `${name} is set by Roundhouse itself` });
      } else if (lower === "authorization" && model.api_key_env !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["headers", name],
          message: "api_key_env already sets Authorization; use one or the other",
        });
      }
    }
  })
  .describe("A model served by an upstream OpenAI-compatible server.");

export const ModelEntry = z.discriminatedUnion("provider", [LlamaModel, OpenAIModel]);

export const Cache = z
  .strictObject({
    store: z
      .enum(["memory", "redis"])
      .default("memory")
      .describe("memory: this process only; redis: shared by replicas."),
    url: z.string().min(1).optional().describe("Redis URL for store: redis (default redis://127.0.0.1:6379)."),
    ttl: Duration.default("1h").describe("How long an answer stays cached."),
    max_entries: z.int().min(1).default(10_000).describe("Most entries kept in memory (least recently used go first)."),
    max_bytes: ByteSize.default("256MiB").describe("Most bytes kept in memory."),
    local_copy: z
      .boolean()
      .default(true)
      .describe(
        "store: redis — each replica also keeps the entries it has read in its own memory (within max_entries and max_bytes), so a repeated hit skips the round trip. Redis tells the replica when one is overwritten, purged or expires (client tracking; Redis 6 or later), and the copy is not used while the connection is down.",
      ),
    mode: z
      .enum(["deterministic", "all", "off"])
      .default("deterministic")
      .describe("deterministic: only temperature 0 or seeded requests; all: every request; off: no cache."),
    timeout: Duration.default("50ms").describe("Longest a lookup may wait on the store before it counts as a miss."),
    scope: z
      .enum(["tenant", "global"])
      .default("tenant")
      .describe(
        "tenant: each API key (tenant) has its own entries, so no key learns from a hit what another asked; global: all keys share entries (more hits, but a hit's speed and content reveal other tenants' prompts).",
      ),
  })
  .describe("The response cache.");

export const Server = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.int().min(0).max(65_535).default(8080),
});

export const FineTuning = z
  .strictObject({
    redis_url: z
      .string()
      .regex(/^rediss?:\/\//, { error: "expected a redis:// or rediss:// URL" })
      .optional()
      .describe(
        "Run fine-tuning jobs on a BullMQ queue in this Redis (REDIS_URL overrides) so `npm run worker` processes train them; in-process otherwise.",
      ),
    threads: z.int().min(1).optional().describe("Trainer threads; default min(2, cores)."),
  })
  .describe("Fine-tuning jobs: where they run.");

// Experiments (A/B splits, canaries): cross-field rules (names, models, the control) are
// checked in experiments.ts, called from ConfigFile's superRefine below.
export const ROLLBACK_METRICS = ["error_rate", "latency_p95_ms", "ttft_p95_ms"] as const;

export const RollbackRule = z
  .strictObject({
    metric: z
      .enum(ROLLBACK_METRICS)
      .describe(
        "error_rate: share of requests the variant's own models failed (5xx, 429, a stream cut by an error, or served by a fallback outside the variant); latency_p95_ms / ttft_p95_ms: 95th percentile (nearest rank) over successful requests, cache hits left out.",
      ),
    max: z.number().min(0).optional().describe("Trip when the metric is above this value."),
    max_vs_control: z
      .number()
      .positive()
      .optional()
      .describe("Trip when the metric is above this multiple of control's value over the same window."),
    min_requests: z
      .int()
      .min(1)
      .default(20)
      .describe(
        "Samples the variant (and, for max_vs_control, control) needs in the window before the rule is judged.",
      ),
    window: Duration.default("5m").describe("Sliding window the metric is computed over."),
  })
  .describe(
    "Rolls the canary back (weight 0 on every replica) when the metric passes its bound. Set max or max_vs_control.",
  );

export const Variant = z
  .strictObject({
    name: ModelId.describe("Named in x-roundhouse-variant, metrics and results."),
    model: z
      .union([ModelId, z.array(ModelId).min(1)])
      .describe("Model id or alias that serves this variant, or a list: the fallback order."),
    weight: z.number().min(0).describe("Share of traffic, relative to the other variants' weights."),
    canary: z.boolean().default(false).describe("A canary may carry rollback rules; it is never the control."),
    control: z
      .boolean()
      .optional()
      .describe(
        "Marks the control (the baseline canaries and results compare to); default: the first non-canary variant.",
      ),
    fallback: z
      .boolean()
      .default(true)
      .describe(
        "When every model of this variant fails before the first byte (load failure, full queue, queue timeout; for an upstream: unreachable, 5xx, 429 or timeout), try control's models too.",
      ),
    rollback: z.array(RollbackRule).default([]).describe("Rules that roll this canary back; needs canary: true."),
  })
  .describe("One arm of an experiment.");

export const Experiment = z
  .strictObject({
    name: ModelId.describe("The model name clients send; must not be a model id or alias."),
    sticky_header: z
      .string()
      .regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, { error: "expected an HTTP header name" })
      .default("x-user-id")
      .describe("Request header whose value keeps a client on one variant; else the request's `user`, else random."),
    variants: z.array(Variant).min(1),
    force_keys: z
      .array(z.string().regex(/^key_[0-9a-f]{12}$/, { error: "expected a key id: key_ and 12 hex digits" }))
      .default([])
      .describe(
        "Key ids (key_ + 12 hex digits of the key's sha256) that may force a variant with x-roundhouse-variant when API_KEYS is set; without API_KEYS anyone may.",
      ),
  })
  .describe("A public model name split between weighted variants.");

export const ExperimentState = z
  .strictObject({
    store: z
      .enum(["file", "redis"])
      .optional()
      .describe(
        "Where weights, rollbacks, events and feedback live. file: DATA_DIR/experiments (one replica); redis: shared by replicas. Default: redis when cache.store is redis, else file.",
      ),
    url: z
      .string()
      .regex(/^rediss?:\/\//, { error: "expected a redis:// or rediss:// URL" })
      .optional()
      .describe("Redis URL; default the cache's url, else redis://127.0.0.1:6379."),
    poll: Duration.default("500ms").describe("How often a replica reads the shared state (redis only)."),
  })
  .describe("Experiment state: run-time weights, rollbacks, events, feedback.");

export const UsageLogSettings = z
  .strictObject({
    store: z
      .enum(["file", "redis"])
      .optional()
      .describe(
        "file: one JSONL file per day under DATA_DIR/usage (one replica); redis: one stream every replica appends to, so /admin/usage, experiment results and rollback rules see the whole fleet's traffic. Default: redis when cache.store or experiment_state.store is redis, else file.",
      ),
    url: z
      .string()
      .regex(/^rediss?:\/\//, { error: "expected a redis:// or rediss:// URL" })
      .optional()
      .describe("Redis URL; default experiment_state's url, else the cache's, else redis://127.0.0.1:6379."),
    max_records: z
      .int()
      .min(1000)
      .default(1_000_000)
      .describe("Records the Redis stream keeps (XADD MAXLEN ~, about 0.5 KB each); the oldest are trimmed."),
    max_buffered: z
      .int()
      .min(1)
      .default(100_000)
      .describe(
        "Records kept in memory while the store refuses writes (Redis down, disk full); beyond it the oldest are dropped and counted in roundhouse_usage_records_dropped_total.",
      ),
  })
  .describe("The usage log: one record per request, read by /admin/usage and experiment results.");

/** A key as logs and models.yaml name it: key_ + the first 12 hex digits of its sha256. */
const KeyId = z.string().regex(/^key_[0-9a-f]{12}$/, { error: "expected a key id: key_ and 12 hex digits" });

export const PerMinute = z
  .strictObject({
    requests_per_minute: z.int().min(1).optional().describe("Requests per minute, on every /v1 route."),
    tokens_per_minute: z
      .int()
      .min(1)
      .optional()
      .describe("Prompt + completion tokens per minute of chat completions; requests are refused once it is spent."),
  })
  .describe("Limits over a sliding minute; past one, requests get 429 rate_limit_exceeded with Retry-After.");

export const RateLimits = z
  .strictObject({
    default: PerMinute.optional().describe(
      "Limits of every key not listed under `keys` (and of all requests together when API_KEYS is unset).",
    ),
    keys: z
      .record(KeyId, PerMinute)
      .default({})
      .describe(
        'Limits by key id: key_ + the first 12 hex digits of the key\'s sha256 (printf %s "$KEY" | sha256sum | cut -c1-12), as /admin/usage?group_by=key shows them. Keys themselves stay in API_KEYS.',
      ),
    store: z
      .enum(["memory", "redis"])
      .optional()
      .describe(
        "memory: each replica counts alone; redis: replicas share the counts. Default: redis when cache.store is redis, else memory.",
      ),
    url: z
      .string()
      .regex(/^rediss?:\/\//, { error: "expected a redis:// or rediss:// URL" })
      .optional()
      .describe("Redis URL; default the cache's url, else redis://127.0.0.1:6379."),
  })
  .describe("Per-key rate limits; none unless configured.");

export const TenantLimits = z
  .strictObject({
    stored_bytes: ByteSize.optional().describe(
      "Most bytes of files (uploads and job results) a tenant keeps; an upload past it gets 400 storage_limit_exceeded.",
    ),
    queued_jobs: z
      .int()
      .min(0)
      .optional()
      .describe(
        "Most fine-tuning jobs a tenant may have waiting (validating_files or queued); a new one past it gets 429.",
      ),
    running_jobs: z
      .int()
      .min(1)
      .optional()
      .describe(
        "Most fine-tuning jobs of one tenant training at once; its other jobs wait while others' train. In-process training runs one job at a time anyway: this bounds a tenant's share of BullMQ workers.",
      ),
  })
  .describe("Limits of one tenant (a key, or a project of keys); none unless configured.");

export const Tenants = z
  .strictObject({
    projects: z
      .record(
        z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, { error: "expected 1 to 64 letters, digits, '.', '_' or '-'" }),
        z.strictObject({
          keys: z.array(KeyId).min(1).describe("Key ids of the project's keys (as rate_limits.keys writes them)."),
          limits: TenantLimits.optional().describe("The project's limits, instead of tenants.limits."),
        }),
      )
      .default({})
      .describe(
        "Keys that share one tenant: each sees the files, jobs, fine-tuned models, stored responses and cache entries the others made.",
      ),
    limits: TenantLimits.prefault({}),
  })
  .superRefine((tenants, ctx) => {
    const projectOf = new Map<string, string>();
    for (const [name, project] of Object.entries(tenants.projects)) {
      project.keys.forEach((key, i) => {
        const first = projectOf.get(key);
        if (first === undefined) projectOf.set(key, name);
        else {
          ctx.addIssue({
            code: "custom",
            path: ["projects", name, "keys", i],
            message: `${key} is already a key of project "${first}"; a key belongs to one project`,
          });
        }
      });
    }
  })
  .describe(
    "Who owns what: with API_KEYS each key is a tenant (or its project is); the admin key sees every tenant's objects.",
  );

export const Limits = z
  .strictObject({
    max_body: ByteSize.default("10MiB").describe("Largest JSON request body; larger ones get 413."),
    max_upload: ByteSize.default("100MiB").describe(
      "Largest upload to POST /v1/files (streamed to disk, then checked).",
    ),
    max_concurrent_uploads: z
      .int()
      .min(1)
      .default(4)
      .describe("Uploads one key (one client address without API_KEYS) may send at once; more get 429."),
    body_timeout: Duration.default("30s").describe(
      "Longest time to receive a request (headers and body); past it 408. Raise it for large uploads over slow links.",
    ),
  })
  .describe("Request size limits.");

export const ConfigFile = z
  .strictObject({
    server: Server.prefault({}).describe("Where to listen; HOST and PORT in the environment override it."),
    memory_budget: ByteSize.optional().describe(
      'Most memory loaded models may use together ("8GiB", "512MB", bytes); least recently used idle models are evicted to stay under it.',
    ),
    max_loaded_models: z.int().min(1).default(4).describe("Most models loaded at once."),
    default_model: ModelId.optional().describe(
      "Model (id or alias) that serves requests naming a model not configured here; without it they get 404 model_not_found.",
    ),
    cache: Cache.prefault({}),
    fine_tuning: FineTuning.prefault({}),
    models: z.array(ModelEntry).min(1),
    experiments: z.array(Experiment).default([]),
    experiment_state: ExperimentState.prefault({}),
    usage_log: UsageLogSettings.prefault({}),
    limits: Limits.prefault({}),
    rate_limits: RateLimits.prefault({}),
    tenants: Tenants.prefault({}),
    responses: z
      .strictObject({
        ttl: Duration.default("30d").describe(
          "How long a stored response (store: true) is kept; OpenAI keeps them 30 days.",
        ),
        store: z
          .enum(["file", "redis"])
          .optional()
          .describe(
            "file: one JSON file per response under DATA_DIR/responses; redis: shared by replicas. Default: redis when cache.store is redis, else file.",
          ),
        url: z.string().min(1).optional().describe("Redis URL; default the cache's, else redis://127.0.0.1:6379."),
      })
      .prefault({})
      .describe("The Responses API's stored responses."),
    metrics: z
      .strictObject({
        auth: z
          .enum(["none", "api", "admin"])
          .default("none")
          .describe(
            "Who may read /metrics: none (open, as exporters usually are), api (any API key or the admin key), admin (the admin key).",
          ),
      })
      .prefault({})
      .describe("The Prometheus endpoint."),
  })
  .superRefine((config, ctx) => {
    const owner = new Map<string, number>();
    config.models.forEach((model, i) => {
      const names: Array<[string, PropertyKey[]]> = [
        [model.id, ["models", i, "id"]],
        ...model.aliases.map((alias, j): [string, PropertyKey[]] => [alias, ["models", i, "aliases", j]]),
      ];
      for (const [name, path] of names) {
        const first = owner.get(name);
        if (first === undefined) owner.set(name, i);
        else {
          const where = first === i ? "this model" : `models[${first}] (${config.models[first]?.id})`;
          ctx.addIssue({ code: "custom", path, message: `"${name}" is already used by ${where}` });
        }
      }
    });
    if (config.default_model !== undefined && !owner.has(config.default_model)) {
      ctx.addIssue({
        code: "custom",
        path: ["default_model"],
        message: `"${config.default_model}" is not the id or alias of any model`,
      });
    }
    checkExperiments(config, owner, ctx);
    const preloaded = config.models.filter((m) => m.provider === "llama" && m.preload).length;
    if (preloaded > config.max_loaded_models) {
      ctx.addIssue({
        code: "custom",
        path: ["max_loaded_models"],
        message: `${preloaded} models have preload: true but at most ${config.max_loaded_models} may be loaded`,
      });
    }
  })
  .meta({ title: "Roundhouse models.yaml" });

export type ConfigFile = z.output<typeof ConfigFile>;
export type LlamaModelEntry = z.output<typeof LlamaModel>;
export type OpenAIModelEntry = z.output<typeof OpenAIModel>;
export type ModelEntry = z.output<typeof ModelEntry>;
export type ExperimentEntry = z.output<typeof Experiment>;

/** The JSON Schema of models.yaml (draft-07, which editors' YAML plugins read best). */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigFile, { io: "input", target: "draft-07" });
}
