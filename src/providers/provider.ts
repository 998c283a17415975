// What every model backend offers the chat route: a validated OpenAI request in, a
// stream of choice events out. A non-streaming response is the collected stream.
import type { ChatCompletionRequest, FinishReason, TokenLogprob, ToolCall, ToolCallDelta } from "../openai/chat.ts";

export type ChatEvent =
  | { type: "content"; index: number; text: string; logprobs?: TokenLogprob[] | undefined }
  | { type: "tool_calls"; index: number; calls: ToolCall[] }
  // Upstream models stream tool calls in fragments (name first, then pieces of the arguments)
  // and refusals as text; relaying them as they come keeps an upstream stream unbuffered.
  | { type: "tool_call_delta"; index: number; delta: ToolCallDelta }
  | { type: "refusal"; index: number; text: string }
  | { type: "finish"; index: number; reason: FinishReason };

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
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

export interface ChatProvider {
  /** Resolves once the request is admitted (model loaded, sequences held, prompt sized);
   * every failure before the first byte is thrown here, so it can get its own status. */
  chat(modelId: string, request: ChatCompletionRequest, ctx: ChatContext): Promise<ChatStream>;
}
