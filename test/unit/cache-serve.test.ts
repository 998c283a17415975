// serveWithCache over the real in-process store: what a request that bypasses the cache costs
// it (no key is made), and that a miss stores what a later identical request replays.
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import { chatCodec, serveWithCache } from "../../src/cache/serve.ts";
import { ResponseCache } from "../../src/cache/store.ts";
import type { ChatStream } from "../../src/providers/provider.ts";
import { cachedAnswer } from "../helpers/cache-entry.ts";

function memoryCache(): ResponseCache {
  return ResponseCache.create(
    { store: "memory", ttlMs: 60_000, maxEntries: 100, maxBytes: 1e6, localCopy: false, timeoutMs: 1000 },
    pino({ level: "silent" }),
  );
}

const answer = cachedAnswer("hello");

/** A provider answering "hello", counting how often it is asked. */
function provider() {
  const calls = { count: 0 };
  const run = async (): Promise<ChatStream> => {
    calls.count++;
    return {
      events: (async function* () {
        yield* answer.events;
      })(),
      usage: () => answer.usage,
    };
  };
  return { run, calls };
}

/** The key "m:1", counting how often it is made. */
function countedKey() {
  const made = { count: 0 };
  const keyOf = () => {
    made.count++;
    return "m:1";
  };
  return { keyOf, made };
}

async function texts(stream: ChatStream): Promise<string[]> {
  const out: string[] = [];
  for await (const event of stream.events) if (event.type === "content") out.push(event.text);
  return out;
}

const codec = chatCodec({ model: "m", choices: 1 });

describe("serveWithCache", () => {
  it("makes no key for a request that neither reads nor writes the cache", async () => {
    const cache = memoryCache();
    const { run, calls } = provider();
    const { keyOf, made } = countedKey();
    const served = await serveWithCache(cache, keyOf, { read: false, write: false }, codec, run);
    expect(served.status).toBe("bypass");
    expect(await texts(served.answer)).toEqual(["hello"]);
    expect(made.count).toBe(0);
    expect(calls.count).toBe(1);
    await cache.close();
  });

  it("stores a miss under its key, once, and replays it for the next request", async () => {
    const cache = memoryCache();
    const { run, calls } = provider();
    const { keyOf, made } = countedKey();
    const first = await serveWithCache(cache, keyOf, { read: true, write: true }, codec, run);
    expect(first.status).toBe("miss");
    expect(await texts(first.answer)).toEqual(["hello"]);
    expect(made.count).toBe(1);
    // The write is not awaited by the request that made it.
    await vi.waitFor(async () => expect((await cache.get("m:1")).result).toBe("hit"));

    const second = await serveWithCache(cache, keyOf, { read: true, write: true }, codec, run);
    expect(second.status).toBe("hit");
    expect(await texts(second.answer)).toEqual(["hello"]);
    expect(second.answer.usage()).toEqual(answer.usage);
    expect(calls.count).toBe(1);
    await cache.close();
  });
});
