// Provider events → OpenAI's response shapes: SSE chunks, or one collected
// ChatCompletion. Streaming is the one primitive; the JSON answer is the stream, collected.
import type { ChatEvent, TokenUsage } from "../providers/provider.ts";
import type {
  ChatCompletion,
  ChatCompletionChoice,
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  FinishReason,
  TokenLogprob,
  ToolCall,
  ToolCallDelta,
  Usage,
} from "./chat.ts";

export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
  systemFingerprint: string;
}

export function usageOf(u: TokenUsage): Usage {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    ...(u.cachedPromptTokens !== undefined ? { prompt_tokens_details: { cached_tokens: u.cachedPromptTokens } } : {}),
    ...(u.reasoningTokens !== undefined ? { completion_tokens_details: { reasoning_tokens: u.reasoningTokens } } : {}),
  };
}

function chunk(meta: CompletionMeta, choices: ChatCompletionChunkChoice[], withUsageKey: boolean): ChatCompletionChunk {
  return {
    id: meta.id,
    object: "chat.completion.chunk",
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.systemFingerprint,
    choices,
    ...(withUsageKey ? { usage: null } : {}),
  };
}

/** The chunks of a stream: the role first for each choice, then deltas, then the finish. */
export async function* toChunks(
  events: AsyncIterable<ChatEvent>,
  meta: CompletionMeta,
  includeUsage: boolean,
): AsyncGenerator<ChatCompletionChunk> {
  const started = new Set<number>();
  const begin = (index: number): ChatCompletionChunk[] => {
    if (started.has(index)) return [];
    started.add(index);
    return [
      chunk(
        meta,
        [{ index, delta: { role: "assistant", content: "", refusal: null }, logprobs: null, finish_reason: null }],
        includeUsage,
      ),
    ];
  };
  for await (const event of events) {
    yield* begin(event.index);
    switch (event.type) {
      case "content":
        yield chunk(
          meta,
          [
            {
              index: event.index,
              delta: { content: event.text },
              logprobs: event.logprobs ? { content: event.logprobs, refusal: null } : null,
              finish_reason: null,
            },
          ],
          includeUsage,
        );
        break;
      case "tool_calls":
        yield chunk(
          meta,
          [
            {
              index: event.index,
              delta: { tool_calls: event.calls.map((call, i) => ({ index: i, ...call })) },
              logprobs: null,
              finish_reason: null,
            },
          ],
          includeUsage,
        );
        break;
      case "tool_call_delta":
        yield chunk(
          meta,
          [{ index: event.index, delta: { tool_calls: [event.delta] }, logprobs: null, finish_reason: null }],
          includeUsage,
        );
        break;
      case "refusal":
        yield chunk(
          meta,
          [{ index: event.index, delta: { refusal: event.text }, logprobs: null, finish_reason: null }],
          includeUsage,
        );
        break;
      case "reasoning":
        yield chunk(
          meta,
          [{ index: event.index, delta: { reasoning_content: event.text }, logprobs: null, finish_reason: null }],
          includeUsage,
        );
        break;
      case "finish":
        yield chunk(
          meta,
          [{ index: event.index, delta: {}, logprobs: null, finish_reason: event.reason }],
          includeUsage,
        );
        break;
    }
  }
}

export function usageChunk(meta: CompletionMeta, usage: TokenUsage): ChatCompletionChunk {
  return { ...chunk(meta, [], false), usage: usageOf(usage) };
}

/** Adds one streamed fragment to the call it continues: the name arrives whole, the arguments in pieces. */
function mergeToolCall(calls: Map<number, ToolCall>, delta: ToolCallDelta): void {
  const call = calls.get(delta.index);
  if (!call) {
    calls.set(delta.index, {
      id: delta.id ?? "",
      type: "function",
      function: { name: delta.function?.name ?? "", arguments: delta.function?.arguments ?? "" },
    });
    return;
  }
  if (delta.id) call.id = delta.id;
  if (delta.function?.name) call.function.name = delta.function.name;
  if (delta.function?.arguments) call.function.arguments += delta.function.arguments;
}

/** Collects a whole stream into one ChatCompletion. */
export async function collect(
  events: AsyncIterable<ChatEvent>,
  meta: CompletionMeta,
  usage: () => TokenUsage,
): Promise<ChatCompletion> {
  const choices = new Map<
    number,
    {
      text: string;
      refusal: string | null;
      reasoning: string | undefined;
      calls: ToolCall[];
      /** Streamed tool calls being put together, by their `index`. */
      fragments: Map<number, ToolCall>;
      logprobs: TokenLogprob[] | null;
      finish: FinishReason;
    }
  >();
  const at = (index: number) => {
    let c = choices.get(index);
    if (!c) {
      c = {
        text: "",
        refusal: null,
        reasoning: undefined,
        calls: [],
        fragments: new Map(),
        logprobs: null,
        finish: "stop",
      };
      choices.set(index, c);
    }
    return c;
  };
  for await (const event of events) {
    const c = at(event.index);
    if (event.type === "content") {
      c.text += event.text;
      if (event.logprobs) c.logprobs = [...(c.logprobs ?? []), ...event.logprobs];
    } else if (event.type === "tool_calls") c.calls.push(...event.calls);
    else if (event.type === "tool_call_delta") mergeToolCall(c.fragments, event.delta);
    else if (event.type === "refusal") c.refusal = (c.refusal ?? "") + event.text;
    else if (event.type === "reasoning") c.reasoning = (c.reasoning ?? "") + event.text;
    else c.finish = event.reason;
  }
  const list: ChatCompletionChoice[] = [...choices.entries()]
    .sort(([a], [b]) => a - b)
    .map(([index, c]) => {
      const streamed = [...c.fragments.entries()].sort(([a], [b]) => a - b).map(([, call]) => call);
      const calls = [...c.calls, ...streamed];
      return {
        index,
        message: {
          role: "assistant",
          content: (calls.length > 0 || c.refusal !== null) && c.text === "" ? null : c.text,
          refusal: c.refusal,
          ...(c.reasoning !== undefined ? { reasoning_content: c.reasoning } : {}),
          ...(calls.length > 0 ? { tool_calls: calls } : {}),
        },
        logprobs: c.logprobs ? { content: c.logprobs, refusal: null } : null,
        finish_reason: c.finish,
      };
    });
  return {
    id: meta.id,
    object: "chat.completion",
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.systemFingerprint,
    choices: list,
    usage: usageOf(usage()),
  };
}
