// An upstream's chat completion chunks (or whole completion) → the provider events the rest of
// Switchyard works with. Pure; validated with the wire schemas of src/openai, which keep what
// OpenAI defines and drop vendor additions.
import { ChatCompletion, ChatCompletionChunk, type ChatCompletionChunkChoice, type Usage } from "../../openai/chat.ts";
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
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { kind: "invalid", problem: "an event that is not JSON" };
  }
  if (typeof json === "object" && json !== null && "error" in json && !("choices" in json)) return { kind: "error" };
  const chunk = ChatCompletionChunk.safeParse(json);
  if (!chunk.success) {
    return { kind: "invalid", problem: `a chunk that is not a chat.completion.chunk (${firstIssue(chunk.error)})` };
  }
  const events: ChatEvent[] = [];
  for (const choice of chunk.data.choices) choiceEvents(choice, events);
  return { kind: "events", events, usage: chunk.data.usage ? tokenUsage(chunk.data.usage) : undefined };
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

/** A whole completion, for an upstream that answers a streaming request with plain JSON anyway. */
export function parseCompletion(body: string): ChunkEvents | Invalid {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    return { kind: "invalid", problem: "a response that is neither an event stream nor JSON" };
  }
  const completion = ChatCompletion.safeParse(json);
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
