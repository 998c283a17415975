// Whether a request may be read from and written to the cache: a pure decision.
import type { ChatCompletionRequest } from "../openai/chat.ts";

export type CacheMode = "deterministic" | "all" | "off";

/** What the response's x-roundhouse-cache header says. */
export type CacheStatus = "hit" | "miss" | "bypass";

export interface CacheDecision {
  read: boolean;
  write: boolean;
}

export function decideCaching(
  req: Pick<ChatCompletionRequest, "temperature" | "seed">,
  mode: CacheMode,
  cacheControl: string | undefined,
  /** The temperature the model uses when the request sets none. */
  defaultTemperature: number,
): CacheDecision {
  if (mode === "off") return { read: false, write: false };
  // Sampled output is a draw, not an answer: replaying it would hide the randomness
  // the client asked for, unless the operator opted into caching everything.
  const temperature = req.temperature ?? defaultTemperature;
  if (mode === "deterministic" && temperature !== 0 && req.seed === undefined) return { read: false, write: false };
  const directives = (cacheControl ?? "")
    .toLowerCase()
    .split(",")
    .map((d) => d.trim());
  if (directives.includes("no-store")) return { read: false, write: false };
  if (directives.includes("no-cache")) return { read: false, write: true };
  return { read: true, write: true };
}
