// What every model backend offers the serving pipeline: a validated OpenAI request in, a
// stream of events out (a non-streaming response is the collected stream), and one
// describe(model) that tells the pipeline what it needs to know of a model.
import type { Operation } from "../config/schema.ts";
import type { ChatCompletionRequest, FinishReason, TokenLogprob, ToolCall, ToolCallDelta } from "../openai/chat.ts";
import type { EmbeddingRequest } from "../openai/embeddings.ts";
import type { RerankRequest, RerankResult } from "../openai/rerank.ts";
import type { CompletionRequest } from "../openai/text-completions.ts";

export type { Operation };

export type ChatEvent =
  | { type: "content"; index: number; text: string; logprobs?: TokenLogprob[] | undefined }
  | { type: "tool_calls"; index: number; calls: ToolCall[] }
  // Upstream models stream tool calls in fragments (name first, then pieces of the arguments)
  // and refusals as text; relaying them as they come keeps an upstream stream unbuffered.
  | { type: "tool_call_delta"; index: number; delta: ToolCallDelta }
  | { type: "refusal"; index: number; text: string }
  /** A thinking model's thoughts, parsed out of its output (never part of `content`). */
  | { type: "reasoning"; index: number; text: string }
  | { type: "finish"; index: number; reason: FinishReason };

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
  /** Of the completion tokens, those the model spent thinking. */
  reasoningTokens?: number | undefined;
  /** Of the prompt tokens, those a local model's sequence already held (its prefix cache): not computed again. */
  cachedPromptTokens?: number | undefined;
  /** True when the counts come from tiktoken because an upstream reported none. */
  estimated?: boolean | undefined;
}

export interface ChatStream {
  events: AsyncIterable<ChatEvent>;
  /** Final once `events` is exhausted. */
  usage(): TokenUsage;
  /**
   * The events arrived together once the whole answer was ready (an upstream's JSON answer):
   * their times say nothing about the first token, so no TTFT or decode speed is taken from them.
   */
  arrivedWhole?: true;
}

export interface ChatContext {
  signal: AbortSignal;
}

/** What the pipeline needs to know of a model, asked of its provider (never of the engine). */
export interface ModelDescription {
  /** Identifies the weights, for cache keys: a sha256 pin, a file's size and mtime, an upstream's address. */
  digest: string;
  /** `system_fingerprint` of its answers. */
  fingerprint: string;
  /** The temperature a request gets when it sets none (the model's sampling default, else OpenAI's 1). */
  defaultTemperature: number;
  operations: readonly Operation[];
  /**
   * How /v1/responses reaches it: passed through (native), translated onto chat, or not known
   * until tried (auto: an upstream not yet asked). Chat when unset (local models).
   */
  responses?: "native" | "chat" | "auto";
}

/** How a local model writes tool calls and thoughts, for GET /v1/models/{id}. */
export interface ToolFormatInfo {
  /** A family (hermes, qwen3, llama3, mistral, harmony, deepseek-r1), or "generic". */
  tool_format: string;
  /** template: told from its chat template; config: named in models.yaml; generic: no format found or asked. */
  tool_format_source: "template" | "config" | "generic";
  reasoning: "auto" | "hide" | "none";
  /** The reasoning_effort values it takes; empty: reasoning_effort is a 400. */
  reasoning_efforts: readonly string[];
}

/** Vectors of one embeddings request, in input order. */
export interface EmbeddingResult {
  /** Float32 values, in the model's full width (or `dimensions` where the model allowed it). */
  vectors: readonly (readonly number[])[];
  usage: TokenUsage;
}

export interface ChatProvider {
  describe(modelId: string): ModelDescription;
  /** A local model's tool-call and reasoning format (resolved once per model). */
  toolFormat?(modelId: string): Promise<ToolFormatInfo | undefined>;
  /** Resolves once the request is admitted (model loaded, sequences held, prompt sized);
   * every failure before the first byte is thrown here, so it can get its own status. */
  chat(modelId: string, request: ChatCompletionRequest, ctx: ChatContext): Promise<ChatStream>;
  embeddings(modelId: string, request: EmbeddingRequest, ctx: ChatContext): Promise<EmbeddingResult>;
  /** Legacy completions: the prompt as it is, no chat template; choice i·n + j is prompt i's j-th. */
  complete(modelId: string, request: CompletionRequest, ctx: ChatContext): Promise<ChatStream>;
  /**
   * The Responses API passed through to a model that serves it itself (an upstream's own
   * /v1/responses): `body` as the client sent it. Undefined when the model turned out not to
   * serve it (the caller translates onto chat instead). Providers without it translate always.
   */
  responses?(modelId: string, body: Record<string, unknown>, ctx: ChatContext): Promise<NativeResponses | undefined>;
  /** Reranking, by a model that serves it (a local reranker GGUF, an upstream's /rerank): the body as the client sent it. */
  rerank?(modelId: string, body: RerankRequest, ctx: ChatContext): Promise<RerankAnswer>;
}

/** Documents scored against a query, most relevant first. */
export interface RerankAnswer {
  results: RerankResult[];
  usage: TokenUsage;
}

/** A Responses API answer as the model that served it sent it: one response object, or its events. */
export type NativeResponses =
  | { kind: "json"; response: Record<string, unknown>; usage(): TokenUsage }
  | { kind: "events"; events: AsyncIterable<Record<string, unknown>>; usage(): TokenUsage };
