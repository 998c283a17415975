// The token usage of an upstream request: what the upstream reported (a JSON answer carries
// it; a stream is always asked for it with stream_options.include_usage), else a tiktoken
// estimate marked `estimated`.
import { type ChatMessage, contentText } from "../../openai/chat.ts";
import type { ChatEvent, TokenUsage } from "../provider.ts";

/** The part of the telemetry's TokenCounter this needs. */
export interface TokenCounting {
  countTokens(text: string, model: string): number;
  countChatPrompt(
    messages: readonly { role: string; content: string; name?: string | undefined }[],
    model: string,
  ): number;
}

/**
 * Text kept for an estimate. Past it only the length is counted and the estimate scales the
 * kept text's tokens per character: a long stream must not be held in memory in case the
 * upstream forgets its usage.
 */
export const KEPT_CHARS = 32 * 1024;

/**
 * tiktoken merges each pre-tokenized piece in time quadratic in its length, and a piece is a
 * whole run of letters: 32 KiB of "aaaa…" would block the event loop for minutes. Counting in
 * slices this long (cut at a space where one is near) bounds the work; a word cut in two costs
 * at most a token per slice, noise in an estimate.
 */
export const SLICE_CHARS = 128;

export class UsageMeter {
  private reported: TokenUsage | undefined;
  private readonly kept: string[] = [];
  private keptChars = 0;
  private totalChars = 0;
  private estimate: { chars: number; usage: TokenUsage } | undefined;

  constructor(
    private readonly counter: TokenCounting,
    /** The upstream's model name: tiktoken picks its encoding by it. */
    private readonly model: string,
    private readonly messages: readonly ChatMessage[],
  ) {}

  report(usage: TokenUsage): void {
    this.reported = usage;
  }

  /** Notes the generated text an event carries. */
  see(event: ChatEvent): void {
    if (this.reported !== undefined) return;
    switch (event.type) {
      case "content":
      case "refusal":
        this.keep(event.text);
        break;
      case "tool_call_delta":
        this.keep((event.delta.function?.name ?? "") + (event.delta.function?.arguments ?? ""));
        break;
      case "tool_calls":
        for (const call of event.calls) this.keep(call.function.name + call.function.arguments);
        break;
      case "finish":
        break;
    }
  }

  usage(): TokenUsage {
    if (this.reported) return this.reported;
    if (this.estimate?.chars !== this.totalChars) {
      this.estimate = { chars: this.totalChars, usage: this.count() };
    }
    return this.estimate.usage;
  }

  private keep(text: string): void {
    this.totalChars += text.length;
    if (this.keptChars < KEPT_CHARS && text.length > 0) {
      this.kept.push(text);
      this.keptChars += text.length;
    }
  }

  private count(): TokenUsage {
    // The framing tokens (per message, role, name) from the counter; the contents in slices.
    const framing = this.counter.countChatPrompt(
      this.messages.map((m) => ({ role: m.role, content: "", name: "name" in m ? m.name : undefined })),
      this.model,
    );
    const contents = this.messages.map((m) => contentText(m.content));
    const promptTokens = framing + estimateTokens(this.counter, contents, this.model);
    const completionTokens = Math.round(
      (estimateTokens(this.counter, this.kept, this.model) * this.totalChars) / Math.max(1, this.keptChars),
    );
    return { promptTokens, completionTokens, estimated: true };
  }
}

/** Tokens of `texts` joined: the first KEPT_CHARS counted in slices, the rest scaled from them. */
export function estimateTokens(counter: TokenCounting, texts: readonly string[], model: string): number {
  const total = texts.reduce((n, t) => n + t.length, 0);
  if (total === 0) return 0;
  const text = texts.join("").slice(0, KEPT_CHARS);
  let tokens = 0;
  for (const slice of slices(text, SLICE_CHARS)) tokens += counter.countTokens(slice, model);
  return total <= text.length ? tokens : Math.round((tokens * total) / text.length);
}

/** `text` in pieces of at most `size`, each ending after a space when there is one in its second half. */
export function slices(text: string, size: number): string[] {
  const out: string[] = [];
  let start = 0;
  while (text.length - start > size) {
    let end = start + size;
    const space = text.lastIndexOf(" ", end - 1);
    if (space >= start + size / 2) end = space + 1;
    out.push(text.slice(start, end));
    start = end;
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}
