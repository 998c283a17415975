// Serves a request through the cache: a hit replays the stored answer; a miss runs the
// provider and stores what it produced, but only once it completed (every choice finished),
// so an aborted or failed generation never becomes an answer. What an answer is, and how it
// is recorded and replayed, is the operation's codec: a stream of chat events, or vectors.
import type { ChatEvent, ChatStream, EmbeddingResult } from "../providers/provider.ts";
import { newCallId } from "../providers/tool-calls.ts";
import { type CachedCompletion, EventRecorder, replay } from "./entry.ts";
import type { CacheDecision, CacheStatus } from "./policy.ts";
import type { ResponseCache } from "./store.ts";

export interface CachedRun<T> {
  answer: T;
  status: CacheStatus;
  /** Lookup failed (store down or slow): served as a miss. */
  cacheError: boolean;
}

/** How one kind of answer goes into the cache and comes back out. */
export interface CacheCodec<T> {
  /** The answer as it passes; `store` is called once, when it completed normally. */
  record(answer: T, store: (entry: CachedCompletion) => void): T;
  replay(entry: CachedCompletion): T;
}

export async function serveWithCache<T>(
  cache: ResponseCache | undefined,
  /** Called only when the cache is read or written: a request that bypasses it is not hashed. */
  keyOf: () => string,
  decision: CacheDecision,
  codec: CacheCodec<T>,
  run: () => Promise<T>,
): Promise<CachedRun<T>> {
  if (!cache || (!decision.read && !decision.write))
    return { answer: await run(), status: "bypass", cacheError: false };
  const key = keyOf();
  let cacheError = false;
  if (decision.read) {
    const lookup = await cache.get(key);
    if (lookup.result === "hit") return { answer: codec.replay(lookup.entry), status: "hit", cacheError };
    cacheError = lookup.result === "error";
  }
  const answer = await run();
  if (!decision.write) return { answer, status: "miss", cacheError };
  return { answer: codec.record(answer, (entry) => cache.set(key, entry)), status: "miss", cacheError };
}

/** Chat streams: the events as generated, stored once every choice finished. */
export function chatCodec(meta: { model: string; choices: number }): CacheCodec<ChatStream> {
  return {
    record: (stream, store) => recording(stream, store, meta),
    replay: (entry) => ({ events: replay(entry.events, newCallId), usage: () => entry.usage }),
  };
}

/** Embeddings: whole at once, stored as they are. */
export function embeddingsCodec(model: string): CacheCodec<EmbeddingResult> {
  return {
    record: (result, store) => {
      // As for streams, the write waits for the next turn so the client does not wait for it.
      setImmediate(store, {
        v: 1,
        model,
        events: [],
        vectors: result.vectors,
        usage: result.usage,
        storedAt: Date.now(),
      } satisfies CachedCompletion);
      return result;
    },
    replay: (entry) => ({ vectors: entry.vectors ?? [], usage: entry.usage }),
  };
}

/**
 * The provider's events as they pass, stored once the provider's stream ended normally with
 * every choice finished (not thrown, not abandoned). A plain iterator rather than an async
 * generator: it runs once per event, and a generator costs several promises per step.
 */
function recording(
  stream: ChatStream,
  store: (entry: CachedCompletion) => void,
  meta: { model: string; choices: number },
): ChatStream {
  const recorder = new EventRecorder();
  const finished = new Set<number>();
  const source = stream.events[Symbol.asyncIterator]();
  const seen = (next: IteratorResult<ChatEvent>): IteratorResult<ChatEvent> => {
    if (!next.done) {
      recorder.record(next.value);
      if (next.value.type === "finish") finished.add(next.value.index);
    } else if (finished.size === meta.choices) {
      const entry: CachedCompletion = {
        v: 1,
        model: meta.model,
        events: recorder.events,
        usage: stream.usage(),
        storedAt: Date.now(),
      };
      // Once: a consumer that asks again after the end must not store it twice.
      finished.clear();
      // This runs before the route has written its response: the write (and, for Redis, its
      // serialisation) waits for the next turn of the event loop so the client does not wait
      // for it. That turn comes before any later request is read, so it still finds the entry.
      setImmediate(store, entry);
    }
    return next;
  };
  const iterator: AsyncIterator<ChatEvent> = {
    next: () => source.next().then(seen),
    // Abandoned: nothing is stored, and the provider is told to stop.
    return: (value?: unknown) => {
      finished.clear();
      return source.return?.(value) ?? Promise.resolve({ done: true, value: value as ChatEvent });
    },
  };
  return { ...stream, events: { [Symbol.asyncIterator]: () => iterator } };
}
