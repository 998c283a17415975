// Server-sent events as OpenAI frames them: `data: <json>` lines, no `event:` field, and a
// literal `[DONE]` to end. An error after the stream has begun cannot change the HTTP status,
// so it goes out as a data event holding the error envelope; the OpenAI SDKs raise an APIError
// when a data event has an `error` key.
import { type ApiError, errorBody } from "./errors.ts";

export const SSE_DONE = "data: [DONE]\n\n";

/** Headers for an SSE response; `no-transform` keeps proxies from buffering or compressing it. */
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  connection: "keep-alive",
  "x-accel-buffering": "no",
};

/** One event. JSON.stringify never emits a raw newline, so the payload fits on one data line. */
export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

/**
 * The event for an error after the first byte. End the stream after it without SSE_DONE, so a
 * hand-rolled client that treats [DONE] as success does not mistake a failure for one.
 */
export function sseError(err: ApiError): string {
  return sseEvent(errorBody(err));
}

/** A comment line: ignored by clients, keeps idle connections from being cut by proxies. */
export const SSE_KEEPALIVE = ": keep-alive\n\n";
