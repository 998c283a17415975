// What Switchyard sends an upstream for a chat request: the client's validated parameters as
// they are (none dropped; the upstream judges what it supports), under the upstream's model
// name, streamed when the client streams, and always with usage, so every request's tokens
// are known.
import type { ChatCompletionRequest } from "../../openai/chat.ts";

/**
 * A streaming client gets a streaming upstream request with usage asked for; any other gets a
 * plain one, whose JSON answer always carries usage. Asking for a stream to collect it here
 * would cost the upstream and this process a chunk each per token (parsed and validated one
 * by one: 30-50 µs of CPU a reply in bench/upstream.ts) for a client that waits for the whole
 * answer anyway. The provider reads either kind of answer, whichever the upstream sends.
 */
export function upstreamBody(req: ChatCompletionRequest, upstreamModel: string): string {
  // The parse already turned `null` into undefined, which JSON.stringify leaves out.
  if (req.stream !== true)
    return JSON.stringify({ ...req, model: upstreamModel, stream: undefined, stream_options: undefined });
  return JSON.stringify({
    ...req,
    model: upstreamModel,
    // include_obfuscation is the client's business with OpenAI; chunks are re-framed here, so
    // its padding would never reach the client anyway.
    stream_options: { include_usage: true },
  });
}

export interface UpstreamTarget {
  /** e.g. https://api.openai.com/v1 (trailing slash removed). */
  baseUrl: string;
  apiKey: string | undefined;
  headers: Readonly<Record<string, string>>;
}

export interface UpstreamEndpoint {
  origin: string;
  path: string;
  /** For a streaming request: `accept: text/event-stream`. */
  headers: Record<string, string>;
  /** For a plain one: `accept: application/json`. */
  jsonHeaders: Record<string, string>;
}

/** Where and with which headers chat requests go; computed once per configured model. */
export function chatEndpoint(target: UpstreamTarget): UpstreamEndpoint {
  const url = new URL(`${target.baseUrl.replace(/\/+$/, "")}/chat/completions`);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    accept: "text/event-stream",
  };
  for (const [name, value] of Object.entries(target.headers)) headers[name.toLowerCase()] = value;
  if (target.apiKey !== undefined) headers.authorization = `Bearer ${target.apiKey}`;
  const jsonHeaders = { ...headers, accept: "application/json" };
  return { origin: url.origin, path: `${url.pathname}${url.search}`, headers, jsonHeaders };
}
