// The cache key: a digest of everything that shapes the output, and nothing else.
// The served model's file digest is part of it, so a re-trained or fine-tuned model
// never shares entries with the model it came from.
import { hash } from "node:crypto";
import { type ChatCompletionRequest, requestedMaxTokens } from "../openai/chat.ts";
import type { EmbeddingRequest } from "../openai/embeddings.ts";
import { type CompletionRequest, LEGACY_DEFAULT_MAX_TOKENS } from "../openai/text-completions.ts";

export interface KeyTarget {
  /** The model that will serve, after alias resolution and A/B assignment. */
  modelId: string;
  /** Identifies the model's weights (file digest, or size+mtime when no pin is set). */
  modelDigest: string;
}

/** Request fields that shape the output. `stream`, `stream_options`, `user` and the
 * documented no-ops (metadata, prompt_cache_key…) are left out on purpose. */
const SHAPING_FIELDS = [
  "messages",
  // max_tokens too, as max_completion_tokens: see cacheKey.
  "max_completion_tokens",
  "temperature",
  "top_p",
  "n",
  "stop",
  "presence_penalty",
  "frequency_penalty",
  "logit_bias",
  "logprobs",
  "top_logprobs",
  "seed",
  "response_format",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  // Only upstream models accept these (chat-support.ts); they change what the upstream answers.
  "reasoning_effort",
  "verbosity",
  "prediction",
  "moderation",
] as const satisfies readonly (keyof ChatCompletionRequest)[];

export function cacheKey(target: KeyTarget, req: ChatCompletionRequest): string {
  const shaping: Record<string, unknown> = {};
  for (const field of SHAPING_FIELDS) {
    if (req[field] !== undefined) shaping[field] = req[field];
  }
  // max_tokens and max_completion_tokens mean the same thing; `stop: "x"` and `["x"]` too.
  // (Set here, not copied and deleted: `delete` turns the object into a slow dictionary.)
  const maxTokens = requestedMaxTokens(req);
  if (maxTokens !== undefined) shaping.max_completion_tokens = maxTokens;
  if (typeof shaping.stop === "string") shaping.stop = [shaping.stop];
  return digestKey(target, shaping);
}

/**
 * `model:digest` of what shapes the answer on that model; other operations than chat name
 * themselves, so no two kinds of request ever share a key. v: the format of keys and of the
 * entries under them. 2: entries in plain JSON (store.ts), which replicas still running 1
 * (Keyv's colon-escaped JSON) must never read, nor they ours.
 */
function digestKey(target: KeyTarget, request: unknown, operation?: "embeddings" | "completions"): string {
  const canonical = canonicalJson({ v: 2, operation, model: target.modelId, digest: target.modelDigest, request });
  return `${target.modelId}:${hash("sha256", canonical, "base64url")}`;
}

/** Embeddings depend on the inputs and `dimensions` only; the encoding is applied when answering. */
export function embeddingsCacheKey(target: KeyTarget, req: EmbeddingRequest): string {
  return digestKey(target, { input: req.input, dimensions: req.dimensions ?? undefined }, "embeddings");
}

/** Legacy completions: everything but `stream`, `stream_options` and `user`. */
export function completionsCacheKey(target: KeyTarget, req: CompletionRequest): string {
  const { stream: _stream, stream_options: _options, user: _user, model: _model, ...shaping } = req;
  // Absent and the default are the same request; `stop: "x"` and `["x"]` too.
  const request = {
    ...shaping,
    max_tokens: req.max_tokens ?? LEGACY_DEFAULT_MAX_TOKENS,
    stop: typeof req.stop === "string" ? [req.stop] : req.stop,
  };
  return digestKey(target, request, "completions");
}

/** JSON with object keys sorted, so key order in the client's body does not matter. */
export function canonicalJson(value: unknown): string {
  // A sorted copy through the native stringify, rather than a replacer it would call back for every value.
  return JSON.stringify(sortedKeys(value));
}

function sortedKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(sortedKeys);
  const source = value as Record<string, unknown>;
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(source).sort()) {
    // JSON.parse makes "__proto__" an own key (a schema may name a property so); assigned, it
    // would set the prototype instead and drop out of the key, letting two schemas share answers.
    if (k === "__proto__") {
      Object.defineProperty(sorted, k, { value: sortedKeys(source[k]), enumerable: true, writable: true });
    } else sorted[k] = sortedKeys(source[k]);
  }
  return sorted;
}
