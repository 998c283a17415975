// An upstream's chat completion chunks (or whole completion) → the provider events the rest of
// Roundhouse works with. Pure; validated with the wire schemas of src/openai, which keep what
// OpenAI defines and drop vendor additions.
import {
  ChatCompletionChunk,
  type ChatCompletionChunkChoice,
  FinishReason,
  type FinishReason as FinishReasonValue,
  UpstreamChatCompletion,
  type Usage,
} from "../../openai/chat.ts";
import type { ChatEvent, TokenUsage } from "../provider.ts";

export interface ChunkEvents {
  kind: "events";
  events: ChatEvent[];
  /** The totals, on the chunk that carries them (include_usage sends them last). */
  usage: TokenUsage | undefined;
}

/** What the upstream sent cannot be read; `problem` says what it was. */
export interface Invalid {
  kind: "invalid";
  problem: string;
}

/** One `data:` payload of an upstream stream; `error` when it is an `{"error": ...}` event. */
export function parseChunk(data: string): ChunkEvents | Invalid | { kind: "error" } {
  const payload = readPayload(data);
  return payload.kind === "json" ? (plainTextChunk(payload.json) ?? chunkEvents(payload.json)) : payload;
}

/** A `data:` payload as JSON; `error` when it is an `{"error": ...}` event rather than a chunk. */
export function readPayload(data: string): { kind: "json"; json: unknown } | Invalid | { kind: "error" } {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { kind: "invalid", problem: "an event that is not JSON" };
  }
  if (typeof json === "object" && json !== null && "error" in json && !("choices" in json)) return { kind: "error" };
  return { kind: "json", json };
}

/** The schema's reading of a parsed chunk (plainTextChunk covers the common case first). */
export function chunkEvents(json: unknown): ChunkEvents | Invalid {
  const chunk = ChatCompletionChunk.safeParse(json);
  if (!chunk.success) {
    return { kind: "invalid", problem: `a chunk that is not a chat.completion.chunk (${firstIssue(chunk.error)})` };
  }
  const events: ChatEvent[] = [];
  for (const choice of chunk.data.choices) choiceEvents(choice, events);
  return { kind: "events", events, usage: chunk.data.usage ? tokenUsage(chunk.data.usage) : undefined };
}

const FINISH_REASONS: ReadonlySet<unknown> = new Set(FinishReason.options);
const DELTA_KEYS: ReadonlySet<string> = new Set(["role", "content", "refusal"]);

/**
 * Nearly every chunk a stream carries is one choice's text delta: read it without the schema.
 * An upstream sends one per token, and validating each with ChatCompletionChunk was a fifth of
 * the CPU of a streamed reply in bench/upstream.ts. Anything this does not recognise as
 * exactly that shape (tool calls, refusals, logprobs, usage, several choices, a field of the
 * wrong type) is left to the schema: undefined. A property test holds its answers to the
 * schema's (test/unit/upstream.test.ts).
 */
export function plainTextChunk(json: unknown): ChunkEvents | undefined {
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const c = json as Record<string, unknown>;
  if (
    typeof c.id !== "string" ||
    c.object !== "chat.completion.chunk" ||
    !Number.isSafeInteger(c.created) ||
    typeof c.model !== "string" ||
    (c.usage !== undefined && c.usage !== null) ||
    (c.system_fingerprint !== undefined && typeof c.system_fingerprint !== "string") ||
    (c.service_tier !== undefined && c.service_tier !== null && typeof c.service_tier !== "string") ||
    !Array.isArray(c.choices) ||
    c.choices.length !== 1
  ) {
    return undefined;
  }
  const choice = c.choices[0] as unknown;
  if (typeof choice !== "object" || choice === null || Array.isArray(choice)) return undefined;
  const { index, delta, logprobs, finish_reason: finish } = choice as Record<string, unknown>;
  if (!Number.isSafeInteger(index) || (logprobs !== undefined && logprobs !== null)) return undefined;
  if (finish !== null && !FINISH_REASONS.has(finish)) return undefined;
  if (typeof delta !== "object" || delta === null || Array.isArray(delta)) return undefined;
  const d = delta as Record<string, unknown>;
  for (const key in d) if (!DELTA_KEYS.has(key)) return undefined;
  if (d.role !== undefined && d.role !== "assistant") return undefined;
  if (d.content !== undefined && d.content !== null && typeof d.content !== "string") return undefined;
  // OpenAI's opening chunk carries `refusal: null`; a refusal itself is the schema's.
  if (d.refusal !== undefined && d.refusal !== null) return undefined;
  const events: ChatEvent[] = [];
  const i = index as number;
  if (typeof d.content === "string" && d.content !== "") events.push({ type: "content", index: i, text: d.content });
  if (finish !== null) events.push({ type: "finish", index: i, reason: finish as FinishReasonValue });
  return { kind: "events", events, usage: undefined };
}

function choiceEvents(choice: ChatCompletionChunkChoice, out: ChatEvent[]): void {
  const { index, delta } = choice;
  const logprobs = choice.logprobs?.content ?? undefined;
  // The role-only opening chunk carries "" — the route opens each choice itself.
  if ((delta.content !== undefined && delta.content !== null && delta.content !== "") || (logprobs?.length ?? 0) > 0) {
    out.push({ type: "content", index, text: delta.content ?? "", logprobs });
  }
  if (delta.refusal) out.push({ type: "refusal", index, text: delta.refusal });
  for (const call of delta.tool_calls ?? []) out.push({ type: "tool_call_delta", index, delta: call });
  if (choice.finish_reason) out.push({ type: "finish", index, reason: choice.finish_reason });
}

/** A whole completion: the answer to a JSON request (or to a stream, from an upstream that ignores `stream`). */
export function parseCompletion(body: string): ChunkEvents | Invalid {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { kind: "invalid", problem: "a response that is neither an event stream nor JSON" };
  }
  const completion = UpstreamChatCompletion.safeParse(json);
  if (!completion.success) {
    return { kind: "invalid", problem: `a response that is not a chat.completion (${firstIssue(completion.error)})` };
  }
  const events: ChatEvent[] = [];
  for (const choice of completion.data.choices) {
    const { index, message } = choice;
    const logprobs = choice.logprobs?.content ?? undefined;
    if (message.content || (logprobs?.length ?? 0) > 0) {
      events.push({ type: "content", index, text: message.content ?? "", logprobs });
    }
    if (message.refusal) events.push({ type: "refusal", index, text: message.refusal });
    if (message.tool_calls && message.tool_calls.length > 0) {
      events.push({ type: "tool_calls", index, calls: message.tool_calls });
    }
    events.push({ type: "finish", index, reason: choice.finish_reason });
  }
  return { kind: "events", events, usage: completion.data.usage ? tokenUsage(completion.data.usage) : undefined };
}

function tokenUsage(usage: Usage): TokenUsage {
  return { promptTokens: usage.prompt_tokens, completionTokens: usage.completion_tokens };
}

function firstIssue(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join(".") || "body"}: ${issue.message}` : "invalid";
}
