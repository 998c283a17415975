// The cache key: a digest of everything that shapes the output, and nothing else.
// The served model's file digest is part of it, so a re-trained or fine-tuned model
// never shares entries with the model it came from.
import { createHash } from "node:crypto";
import type { ChatCompletionRequest } from "../openai/chat.ts";

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
  "max_tokens",
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
] as const satisfies readonly (keyof ChatCompletionRequest)[];

export function cacheKey(target: KeyTarget, req: ChatCompletionRequest): string {
  const shaping: Record<string, unknown> = {};
  for (const field of SHAPING_FIELDS) {
    if (req[field] !== undefined) shaping[field] = req[field];
  }
  // max_tokens and max_completion_tokens mean the same thing; `stop: "x"` and `["x"]` too.
  if (shaping.max_completion_tokens === undefined && shaping.max_tokens !== undefined) {
    shaping.max_completion_tokens = shaping.max_tokens;
  }
  delete shaping.max_tokens;
  if (typeof shaping.stop === "string") shaping.stop = [shaping.stop];
  const canonical = canonicalJson({ v: 1, model: target.modelId, digest: target.modelDigest, request: shaping });
  return `${target.modelId}:${createHash("sha256").update(canonical).digest("base64url")}`;
}

/** JSON with object keys sorted, so key order in the client's body does not matter. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}
