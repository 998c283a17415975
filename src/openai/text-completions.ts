// POST /v1/completions (legacy), as OpenAI defines it: CreateCompletionRequest in;
// CreateCompletionResponse out, the same shape for the whole answer and for each stream chunk.
// Built from the same provider events as chat; only the shapes differ.
import { z } from "zod";
import type { ChatEvent, TokenUsage } from "../providers/provider.ts";
import type { TokenLogprob } from "./chat.ts";
import { nullish } from "./chat-request.ts";
import { usageOf } from "./completion.ts";

/** OpenAI's bounds on the integer `logprobs` and on `n`/`best_of`. */
export const MAX_LEGACY_LOGPROBS = 5;
export const MAX_PROMPTS = 64;

const tokenId = z.int().min(0);

export const CompletionRequest = z.strictObject({
  model: z.string().min(1),
  prompt: z.union([
    z.string(),
    z.array(z.string()).min(1).max(MAX_PROMPTS),
    z.array(tokenId).min(1),
    z.array(z.array(tokenId).min(1)).min(1).max(MAX_PROMPTS),
  ]),
  best_of: nullish(z.int().min(1).max(20)),
  echo: nullish(z.boolean()),
  frequency_penalty: nullish(z.number().min(-2).max(2)),
  logit_bias: nullish(
    z.record(z.string().regex(/^\d+$/, { error: "expected a token id" }), z.number().min(-100).max(100)),
  ),
  logprobs: nullish(z.int().min(0).max(MAX_LEGACY_LOGPROBS)),
  /** OpenAI's legacy default is 16 tokens. */
  max_tokens: nullish(z.int().min(0)),
  n: nullish(z.int().min(1).max(8)),
  presence_penalty: nullish(z.number().min(-2).max(2)),
  seed: nullish(z.int()),
  stop: nullish(z.union([z.string(), z.array(z.string()).max(4)])),
  stream: nullish(z.boolean()),
  stream_options: nullish(
    z.strictObject({ include_usage: nullish(z.boolean()), include_obfuscation: nullish(z.boolean()) }),
  ),
  suffix: nullish(z.string()),
  temperature: nullish(z.number().min(0).max(2)),
  top_p: nullish(z.number().min(0).max(1)),
  user: nullish(z.string()),
});
export type CompletionRequest = z.output<typeof CompletionRequest>;

export const LEGACY_DEFAULT_MAX_TOKENS = 16;

/** The prompts as a list, whichever of the four shapes they came in. */
export function completionPrompts(prompt: CompletionRequest["prompt"]): (string | number[])[] {
  if (typeof prompt === "string") return [prompt];
  if (typeof prompt[0] === "number") return [prompt as number[]];
  return prompt as (string | number[])[];
}

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface CompletionChoice {
  text: string;
  index: number;
  logprobs: LegacyLogprobs | null;
  finish_reason: "stop" | "length" | "content_filter" | null;
}

export interface TextCompletion {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  system_fingerprint: string;
  choices: CompletionChoice[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

export interface TextCompletionMeta {
  id: string;
  created: number;
  model: string;
  systemFingerprint: string;
}

function completion(meta: TextCompletionMeta, choices: CompletionChoice[]): TextCompletion {
  return {
    id: meta.id,
    object: "text_completion",
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.systemFingerprint,
    choices,
  };
}

function finishReason(reason: string): CompletionChoice["finish_reason"] {
  return reason === "length" || reason === "content_filter" ? reason : "stop";
}

/** Chat-style token logprobs in the legacy form; `offset` is where the text of the first one begins. */
export function legacyLogprobs(logprobs: readonly TokenLogprob[], offset: number): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  for (const lp of logprobs) {
    out.tokens.push(lp.token);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top_logprobs.map((t) => [t.token, t.logprob])));
    out.text_offset.push(at);
    at += lp.token.length;
  }
  return out;
}

/** The chunks of a stream: one per content event, then each choice's finish. */
export async function* toCompletionChunks(
  events: AsyncIterable<ChatEvent>,
  meta: TextCompletionMeta,
): AsyncGenerator<TextCompletion> {
  const offsets = new Map<number, number>();
  for await (const event of events) {
    if (event.type === "content") {
      const offset = offsets.get(event.index) ?? 0;
      offsets.set(event.index, offset + event.text.length);
      const logprobs = event.logprobs ? legacyLogprobs(event.logprobs, offset) : null;
      yield completion(meta, [{ text: event.text, index: event.index, logprobs, finish_reason: null }]);
    } else if (event.type === "finish") {
      yield completion(meta, [
        { text: "", index: event.index, logprobs: null, finish_reason: finishReason(event.reason) },
      ]);
    }
  }
}

export function completionUsageChunk(meta: TextCompletionMeta, usage: TokenUsage): TextCompletion {
  return { ...completion(meta, []), usage: usageOf(usage) };
}

/** Collects a whole stream into one answer. */
export async function collectCompletion(
  events: AsyncIterable<ChatEvent>,
  meta: TextCompletionMeta,
  usage: () => TokenUsage,
  withLogprobs: boolean,
): Promise<TextCompletion> {
  const choices = new Map<number, { text: string; logprobs: TokenLogprob[]; finish: string }>();
  for await (const event of events) {
    let c = choices.get(event.index);
    if (!c) {
      c = { text: "", logprobs: [], finish: "stop" };
      choices.set(event.index, c);
    }
    if (event.type === "content") {
      c.text += event.text;
      if (event.logprobs) c.logprobs.push(...event.logprobs);
    } else if (event.type === "finish") c.finish = event.reason;
  }
  const list = [...choices.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, c]) => ({
      text: c.text,
      index,
      logprobs: withLogprobs ? legacyLogprobs(c.logprobs, 0) : null,
      finish_reason: finishReason(c.finish),
    }));
  return { ...completion(meta, list), usage: usageOf(usage()) };
}
