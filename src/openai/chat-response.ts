// Chat completion responses, shaped as OpenAI's CreateChatCompletionResponse and
// CreateChatCompletionStreamResponse. Schemas (not only types) so the upstream provider can
// parse what another OpenAI-compatible server sends; unknown keys there are dropped, not fatal,
// because upstreams add vendor fields freely.
import { z } from "zod";

export const FinishReason = z.enum(["stop", "length", "tool_calls", "content_filter", "function_call"]);

export const ToolCall = z.object({
  id: z.string(),
  type: z.literal("function"),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

/** A tool call as it arrives in stream deltas: `index` ties the fragments together. */
export const ToolCallDelta = z.object({
  index: z.int(),
  id: z.string().optional(),
  type: z.literal("function").optional(),
  function: z.object({ name: z.string().optional(), arguments: z.string().optional() }).optional(),
});

export const TopLogprob = z.object({
  token: z.string(),
  logprob: z.number(),
  bytes: z.array(z.int()).nullable(),
});

export const TokenLogprob = TopLogprob.extend({ top_logprobs: z.array(TopLogprob) });

export const ChoiceLogprobs = z.object({
  content: z.array(TokenLogprob).nullable(),
  refusal: z.array(TokenLogprob).nullable(),
});

export const Usage = z.object({
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  total_tokens: z.int(),
  prompt_tokens_details: z.object({ cached_tokens: z.int().optional(), audio_tokens: z.int().optional() }).optional(),
  completion_tokens_details: z
    .object({
      reasoning_tokens: z.int().optional(),
      audio_tokens: z.int().optional(),
      accepted_prediction_tokens: z.int().optional(),
      rejected_prediction_tokens: z.int().optional(),
    })
    .optional(),
});

// `content` and `refusal` are required-but-nullable in the spec: always send both keys.
export const ChatCompletionMessage = z.object({
  role: z.literal("assistant"),
  content: z.string().nullable(),
  refusal: z.string().nullable(),
  /** A thinking model's thoughts (llama-server's, vLLM's and DeepSeek's field); absent otherwise. */
  reasoning_content: z.string().optional(),
  tool_calls: z.array(ToolCall).optional(),
  annotations: z.array(z.unknown()).optional(),
});

export const ChatCompletionChoice = z.object({
  index: z.int(),
  message: ChatCompletionMessage,
  logprobs: ChoiceLogprobs.nullable(),
  finish_reason: FinishReason,
});

export const ChatCompletion = z.object({
  id: z.string(),
  object: z.literal("chat.completion"),
  created: z.int(),
  model: z.string(),
  choices: z.array(ChatCompletionChoice),
  usage: Usage.optional(),
  system_fingerprint: z.string().optional(),
  service_tier: z.string().nullable().optional(),
});

// An upstream's JSON answer, as it may come: llama-server and Ollama leave out `refusal` and
// `logprobs`, and a tool-call answer may leave out `content`. Read as the spec's nulls.
export const UpstreamChatCompletion = ChatCompletion.extend({
  choices: z.array(
    ChatCompletionChoice.extend({
      message: ChatCompletionMessage.extend({
        content: z.string().nullable().default(null),
        refusal: z.string().nullable().default(null),
      }),
      logprobs: ChoiceLogprobs.nullable().default(null),
    }),
  ),
});

export const ChatCompletionDelta = z.object({
  role: z.literal("assistant").optional(),
  content: z.string().nullable().optional(),
  refusal: z.string().nullable().optional(),
  reasoning_content: z.string().optional(),
  tool_calls: z.array(ToolCallDelta).optional(),
});

export const ChatCompletionChunkChoice = z.object({
  index: z.int(),
  delta: ChatCompletionDelta,
  logprobs: ChoiceLogprobs.nullable().optional(),
  finish_reason: FinishReason.nullable(),
});

// With stream_options.include_usage every chunk carries `usage: null` except the last, which has
// empty `choices` and the totals.
export const ChatCompletionChunk = z.object({
  id: z.string(),
  object: z.literal("chat.completion.chunk"),
  created: z.int(),
  model: z.string(),
  choices: z.array(ChatCompletionChunkChoice),
  usage: Usage.nullable().optional(),
  system_fingerprint: z.string().optional(),
  service_tier: z.string().nullable().optional(),
});

export type FinishReason = z.output<typeof FinishReason>;
export type ToolCall = z.output<typeof ToolCall>;
export type ToolCallDelta = z.output<typeof ToolCallDelta>;
export type TopLogprob = z.output<typeof TopLogprob>;
export type TokenLogprob = z.output<typeof TokenLogprob>;
export type ChoiceLogprobs = z.output<typeof ChoiceLogprobs>;
export type Usage = z.output<typeof Usage>;
export type ChatCompletionMessage = z.output<typeof ChatCompletionMessage>;
export type ChatCompletionChoice = z.output<typeof ChatCompletionChoice>;
export type ChatCompletion = z.output<typeof ChatCompletion>;
export type ChatCompletionDelta = z.output<typeof ChatCompletionDelta>;
export type ChatCompletionChunkChoice = z.output<typeof ChatCompletionChunkChoice>;
export type ChatCompletionChunk = z.output<typeof ChatCompletionChunk>;
