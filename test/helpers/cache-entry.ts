// A cache entry as the recorder stores one: a single choice's text, finished, with usage.
import type { CachedCompletion } from "../../src/cache/entry.ts";

export const cachedAnswer = (text: string): CachedCompletion => ({
  v: 1,
  model: "m",
  events: [
    { type: "content", index: 0, text },
    { type: "finish", index: 0, reason: "stop" },
  ],
  usage: { promptTokens: 3, completionTokens: 2 },
  storedAt: Date.now(),
});
