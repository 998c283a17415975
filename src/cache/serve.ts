// Serves a chat request through the cache: a hit replays the stored events; a miss runs
// the provider and stores what it produced, but only once every choice finished, so an
// aborted or failed generation never becomes an answer.
import type { ChatEvent, ChatStream } from "../providers/provider.ts";
import { type CachedCompletion, EventRecorder, replay } from "./entry.ts";
import type { CacheDecision, CacheStatus } from "./policy.ts";
import type { ResponseCache } from "./store.ts";

export interface CachedRun {
  stream: ChatStream;
  status: CacheStatus;
  /** Lookup failed (store down or slow): served as a miss. */
  cacheError: boolean;
}

export async function serveWithCache(
  cache: ResponseCache | undefined,
  /** Called only when the cache is read or written: a request that bypasses it is not hashed. */
  keyOf: () => string,
  decision: CacheDecision,
  meta: { model: string; choices: number },
  run: () => Promise<ChatStream>,
): Promise<CachedRun> {
  if (!cache || (!decision.read && !decision.write))
    return { stream: await run(), status: "bypass", cacheError: false };
  const key = keyOf();
  let cacheError = false;
  if (decision.read) {
    const lookup = await cache.get(key);
    if (lookup.result === "hit") {
      const { entry } = lookup;
      return { stream: { events: replay(entry.events), usage: () => entry.usage }, status: "hit", cacheError };
    }
    cacheError = lookup.result === "error";
  }
  const stream = await run();
  if (!decision.write) return { stream, status: "miss", cacheError };
  return { stream: recording(stream, (entry) => cache.set(key, entry), meta), status: "miss", cacheError };
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
