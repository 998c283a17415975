// What Roundhouse sends an upstream for a chat or legacy completion request: the client's
// validated parameters as they are (none dropped; the upstream judges what it supports), under
// the upstream's model name. A stream is asked for only when the client asked for one, and then always with usage,
// so every streamed request's tokens are known; a JSON answer carries its usage anyway. A JSON
// client gets a JSON request because that is what it sent: some models stream only for
// verified OpenAI organizations, and one JSON body costs the upstream and this proxy far less
// than a few hundred events (issue #8's note has the figures).
import type { ChatCompletionRequest } from "../../openai/chat.ts";

export function upstreamBody(
  req: ChatCompletionRequest | { stream?: boolean | null | undefined },
  upstreamModel: string,
): string {
  // The parse already turned `null` into undefined, which JSON.stringify leaves out.
  if (req.stream !== true) return JSON.stringify({ ...req, model: upstreamModel });
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
  /** For a streamed request and for a JSON one: they differ in `accept`. */
  headers: { stream: Record<string, string>; json: Record<string, string> };
}

/** Where and with which headers chat requests go; computed once per configured model. */
export function chatEndpoint(target: UpstreamTarget): UpstreamEndpoint {
  return upstreamEndpoint(target, "/chat/completions");
}

/** Where and with which headers requests to one of the upstream's endpoints go, e.g. "/embeddings". */
export function upstreamEndpoint(target: UpstreamTarget, path: string): UpstreamEndpoint {
  const url = new URL(`${target.baseUrl.replace(/\/+$/, "")}${path}`);
  const common: Record<string, string> = { "content-type": "application/json" };
  for (const [name, value] of Object.entries(target.headers)) common[name.toLowerCase()] = value;
  if (target.apiKey !== undefined) common.authorization = `Bearer ${target.apiKey}`;
  return {
    origin: url.origin,
    path: `${url.pathname}${url.search}`,
    headers: {
      // A configured Accept wins, as every configured header does.
      stream: { accept: "text/event-stream", ...common },
      json: { accept: "application/json", ...common },
    },
  };
}
