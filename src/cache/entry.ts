// What a cache entry holds: the provider's events and usage of one completed
// generation. Replaying them through the same code that formats a live response makes a
// hit indistinguishable from a miss, as JSON or as SSE, whichever the client asks for.
import { randomBytes } from "node:crypto";
import type { ChatEvent, TokenUsage } from "../providers/provider.ts";

/**
 * A stored event: content events of a choice are merged to keep entries small, with the
 * lengths of the pieces they were generated in, so a replay streams as the original did.
 */
export type StoredEvent =
  | Exclude<ChatEvent, { type: "content" }>
  | (Extract<ChatEvent, { type: "content" }> & {
      /** Lengths (UTF-16 units) of the original pieces; absent: one piece. */
      pieces?: number[] | undefined;
      /** How many logprobs each piece carried. */
      logprobPieces?: number[] | undefined;
    });

/** Read-only: the memory store hands the same object to every hit. */
export interface CachedCompletion {
  readonly v: 1;
  readonly model: string;
  readonly events: readonly StoredEvent[];
  /** An embeddings answer's vectors (its `events` are empty). */
  readonly vectors?: readonly (readonly number[])[] | undefined;
  readonly usage: TokenUsage;
  readonly storedAt: number;
}

/** Records events as they pass, merging adjacent text of a choice and noting where the pieces were. */
export class EventRecorder {
  readonly events: StoredEvent[] = [];

  record(event: ChatEvent): void {
    const last = this.events.at(-1);
    if (
      event.type === "content" &&
      last?.type === "content" &&
      last.index === event.index &&
      !event.logprobs === !last.logprobs
    ) {
      this.events[this.events.length - 1] = {
        ...last,
        text: last.text + event.text,
        logprobs: last.logprobs && event.logprobs ? [...last.logprobs, ...event.logprobs] : undefined,
        pieces: [...(last.pieces ?? [last.text.length]), event.text.length],
        logprobPieces:
          last.logprobs && event.logprobs
            ? [...(last.logprobPieces ?? [last.logprobs.length]), event.logprobs.length]
            : undefined,
      };
      return;
    }
    this.events.push(event);
  }
}

/**
 * The stored events as they were generated: one content event per original piece. Tool-call
 * ids are made anew, as OpenAI's are unique per response: clients that key tool results by
 * call id must not see one id in two conversations.
 */
export async function* replay(events: readonly StoredEvent[], newCallId: () => string): AsyncGenerator<ChatEvent> {
  const ids = new Map<string, string>();
  const fresh = (id: string) => {
    let replacement = ids.get(id);
    if (replacement === undefined) {
      // Mistral's templates take back only ids of 9 letters and digits: keep that shape.
      replacement = /^[A-Za-z0-9]{9}$/.test(id) ? shortCallId() : newCallId();
      ids.set(id, replacement);
    }
    return replacement;
  };
  for (const event of events) {
    switch (event.type) {
      case "content":
        yield* pieces(event);
        break;
      case "tool_calls":
        yield { ...event, calls: event.calls.map((call) => ({ ...call, id: fresh(call.id) })) };
        break;
      case "tool_call_delta":
        yield event.delta.id ? { ...event, delta: { ...event.delta, id: fresh(event.delta.id) } } : event;
        break;
      default:
        yield event;
    }
  }
}

function* pieces(event: Extract<StoredEvent, { type: "content" }>): Generator<ChatEvent> {
  const { index, text, logprobs } = event;
  if (!event.pieces) {
    yield { type: "content", index, text, logprobs };
    return;
  }
  let at = 0;
  let lpAt = 0;
  for (const [i, length] of event.pieces.entries()) {
    const count = event.logprobPieces?.[i] ?? 0;
    yield {
      type: "content",
      index,
      text: text.slice(at, at + length),
      logprobs: logprobs ? logprobs.slice(lpAt, lpAt + count) : undefined,
    };
    at += length;
    lpAt += count;
  }
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

function shortCallId(): string {
  return Array.from(randomBytes(9), (b) => ALNUM[b % ALNUM.length]).join("");
}
