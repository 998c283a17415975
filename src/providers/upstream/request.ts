// What Switchyard sends an upstream for a chat request: the client's validated parameters as
// they are (none dropped; the upstream judges what it supports), under the upstream's model
// name, always streamed and always with usage, so one code path serves JSON and SSE clients
// and every request's tokens are known.
import type { ChatCompletionRequest } from "../../openai/chat.ts";

export function upstreamBody(req: ChatCompletionRequest, upstreamModel: string): string {
  // The parse already turned `null` into undefined, which JSON.stringify leaves out.
  return JSON.stringify({
    ...req,
    model: upstreamModel,
    stream: true,
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
  headers: Record<string, string>;
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
  return { origin: url.origin, path: `${url.pathname}${url.search}`, headers };
}
