// The one usage record per chat request: what the usage log stores, the request log line
// carries and the metrics are derived from. Counts and timings only, never prompt or
// completion text, and never the API key itself.
import { createHash } from "node:crypto";
import { z } from "zod";
import type { TokenUsage } from "../providers/provider.ts";
import { bearerToken } from "../security/api-keys.ts";

// "error": the cache could not be read (store down or slow) and the request was served as a miss.
export const CacheResult = z.enum(["hit", "miss", "bypass", "error"]);
export type CacheResult = z.output<typeof CacheResult>;

/** The status recorded when the client went away before the response was complete (nginx's code). */
export const CLIENT_CLOSED = 499;

export const ReferenceCost = z.object({
  /** The priced model the traffic is compared with (models.yaml `reference_price.model`). */
  model: z.string(),
  prompt_tokens: z.int().min(0),
  completion_tokens: z.int().min(0),
  cost_usd: z.number().min(0),
});
export type ReferenceCost = z.output<typeof ReferenceCost>;

// Not strict: records written by a newer version (more fields) must still read back.
export const UsageRecord = z.object({
  request_id: z.string(),
  /** ISO 8601 UTC; named so it cannot collide with pino's own `time` on the log line. */
  started_at: z.string(),
  key_id: z.string(),
  /** What was asked: chat, completions or embeddings (records older than the field are chats). */
  operation: z.string().optional(),
  /** The model name the client sent (possibly unknown to us). */
  model: z.string().optional(),
  /** The configured model the name resolved to. */
  served_model: z.string().optional(),
  provider: z.string().optional(),
  experiment: z.string().optional(),
  variant: z.string().optional(),
  /** The variant was forced (x-roundhouse-variant): not counted in rollback windows or results. */
  forced: z.literal(true).optional(),
  cache: CacheResult.optional(),
  status: z.int(),
  /** OpenAI's error.type and error.code when the request failed, before or during a stream. */
  error_type: z.string().optional(),
  error_code: z.string().optional(),
  stream: z.boolean(),
  client_disconnected: z.boolean(),
  prompt_tokens: z.int().min(0),
  completion_tokens: z.int().min(0),
  /** Of the prompt tokens, those a local model's sequence already held (not computed again). */
  cached_prompt_tokens: z.int().min(0).optional(),
  /** True when the counts come from tiktoken rather than the serving model's tokenizer. */
  estimated: z.boolean(),
  ttft_ms: z.number().optional(),
  latency_ms: z.number(),
  tokens_per_second: z.number().optional(),
  fallbacks: z.int().min(0),
  /** In an experiment: whether one of the variant's own models served (false after a fallback to control's). */
  variant_served: z.boolean().optional(),
  reference: ReferenceCost.optional(),
});
export type UsageRecord = z.output<typeof UsageRecord>;

/** Everything known about a finished request; buildRecord turns it into the stored shape. */
export interface RequestFacts {
  requestId: string;
  /** Epoch milliseconds. */
  startedAt: number;
  keyId: string;
  operation?: string | undefined;
  model?: string | undefined;
  servedModel?: string | undefined;
  provider?: string | undefined;
  experiment?: string | undefined;
  variant?: string | undefined;
  forced?: boolean | undefined;
  cache?: CacheResult | undefined;
  stream: boolean;
  status: number;
  error?: { type: string; code: string | null } | undefined;
  clientDisconnected: boolean;
  usage?: TokenUsage | undefined;
  estimated: boolean;
  /** Milliseconds since the start: first and last content/tool delta, end of the response. */
  firstDeltaMs?: number | undefined;
  lastDeltaMs?: number | undefined;
  endMs: number;
  fallbacks: number;
  variantServed?: boolean | undefined;
}

/**
 * Every key is always present (undefined when it does not apply, which JSON and pino leave
 * out), so all records share one object shape: serializing them twice per request is the
 * largest part of recording, and V8 serializes a shape it has seen before fastest.
 */
export function buildRecord(f: RequestFacts, reference?: ReferenceCost): UsageRecord {
  const completion = f.usage?.completionTokens ?? 0;
  return {
    request_id: f.requestId,
    started_at: new Date(f.startedAt).toISOString(),
    key_id: f.keyId,
    operation: f.operation,
    model: f.model,
    served_model: f.servedModel,
    provider: f.provider,
    experiment: f.experiment,
    variant: f.variant,
    ...(f.forced ? { forced: true as const } : {}),
    cache: f.cache,
    status: f.clientDisconnected ? CLIENT_CLOSED : f.status,
    error_type: f.error?.type,
    error_code: f.error?.code ?? undefined,
    stream: f.stream,
    client_disconnected: f.clientDisconnected,
    prompt_tokens: f.usage?.promptTokens ?? 0,
    completion_tokens: completion,
    ...(f.usage?.cachedPromptTokens === undefined ? {} : { cached_prompt_tokens: f.usage.cachedPromptTokens }),
    estimated: f.estimated,
    ttft_ms: f.firstDeltaMs === undefined ? undefined : roundMs(f.firstDeltaMs),
    latency_ms: roundMs(f.endMs),
    tokens_per_second: decodeRate(completion, f.firstDeltaMs, f.lastDeltaMs),
    fallbacks: f.fallbacks,
    variant_served: f.variantServed,
    reference,
  };
}

/**
 * Tokens generated after the first delta over the time from the first delta to the last:
 * the decode speed a client sees, free of queueing and prompt processing. Undefined when
 * the reply came in one delta (tool calls are sent whole), as any figure would be noise.
 */
export function decodeRate(
  completionTokens: number,
  firstMs: number | undefined,
  lastMs: number | undefined,
): number | undefined {
  if (firstMs === undefined || lastMs === undefined || completionTokens < 2 || lastMs <= firstMs) return undefined;
  return Math.round(((completionTokens - 1) / ((lastMs - firstMs) / 1000)) * 100) / 100;
}

/**
 * How a finished request counts: the one definition behind the usage summary's error rate, the
 * rollback rules and the experiment results, so all three agree on the same traffic.
 * ok: answered. failed: the server's side failed: a 5xx, a 429, an error event inside a stream,
 * or (in an experiment) a model outside the variant answered after a fallback. client_error: any
 * other 4xx, which the client would get from any model. disconnected: the client left first
 * (499), which says nothing about the model.
 */
export type Outcome = "ok" | "failed" | "client_error" | "disconnected";

export function outcomeOf(r: UsageRecord): Outcome {
  if (r.client_disconnected) return "disconnected";
  if (r.error_type !== undefined) {
    const clientError = r.status >= 400 && r.status < 500 && r.status !== 429;
    return clientError ? "client_error" : "failed";
  }
  return r.variant_served === false ? "failed" : "ok";
}

/**
 * A stable, non-reversible id for the bearer key: the first 12 hex digits of its sha256
 * (48 bits, enough to tell a team's keys apart, useless for recovering a random key).
 */
export function keyId(authorization: string | undefined): string {
  // Read as the key check reads it (any case of "Bearer"), so the id that per-key rate limits
  // count against is the key that was let in, whatever way the client spelled the scheme.
  const token = bearerToken(authorization);
  if (token === undefined) return "anonymous";
  return `key_${createHash("sha256").update(token).digest("hex").slice(0, 12)}`;
}

function roundMs(ms: number): number {
  return Math.round(ms * 100) / 100;
}
