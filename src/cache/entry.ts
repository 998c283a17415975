// What a cache entry holds: the provider's events and usage of one completed
// generation. Replaying them through the same code that formats a live response makes a
// hit indistinguishable from a miss, as JSON or as SSE, whichever the client asks for.
import type { ChatEvent, TokenUsage } from "../providers/provider.ts";

/** Read-only: the memory store hands the same object to every hit. */
export interface CachedCompletion {
  readonly v: 1;
  readonly model: string;
  readonly events: readonly ChatEvent[];
  /** An embeddings answer's vectors (its `events` are empty). */
  readonly vectors?: readonly (readonly number[])[] | undefined;
  readonly usage: TokenUsage;
  readonly storedAt: number;
}

/** Records events as they pass, merging adjacent text of a choice to keep entries small. */
export class EventRecorder {
  readonly events: ChatEvent[] = [];

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
      };
      return;
    }
    this.events.push(event);
  }
}

export async function* replay(events: readonly ChatEvent[]): AsyncGenerator<ChatEvent> {
  yield* events;
}
