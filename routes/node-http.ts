// The hot path's reads and writes of the HTTP exchange through node's own IncomingMessage and
// ServerResponse: request headers, whether the client is still there, and extra response
// headers. The web Request and Hono's c.header() do the same, but @hono/node-server builds
// the Request's Headers and `signal` (an AbortController and its EventTarget) only when asked,
// and a response with more than one header gets a web Headers object that the adapter turns
// back into node's; on the chat path those cost more than everything else Hono does for a
// request (~25 µs of CPU for the signal alone; figures in issue #8's note). Without node's
// server (app.request() in tests) each falls back to the web objects.
import type { Context } from "hono";
import type { AppEnv } from "./env.ts";

/**
 * A request header; `name` in lower case. Node keeps the first of duplicated singleton headers
 * (authorization, content-length, content-type, host…) and joins the others with ", ".
 */
export function requestHeader(c: Context<AppEnv>, name: string): string | undefined {
  const incoming = c.env?.incoming;
  if (!incoming) return c.req.header(name);
  const value = incoming.headers[name];
  return Array.isArray(value) ? value.join(", ") : value;
}

/** The client's IP address (the peer of the connection); "unknown" without node's server. */
export function clientAddress(c: Context<AppEnv>): string {
  return c.env?.incoming?.socket.remoteAddress ?? "unknown";
}

/** The client closed the connection before its response was complete. */
export function clientGone(c: Context<AppEnv>): boolean {
  const outgoing = c.env?.outgoing;
  if (!outgoing) return c.req.raw.signal.aborted;
  // `destroyed` is also true once a complete response's socket is released: tell the two apart.
  return outgoing.destroyed && !outgoing.writableFinished;
}

/** Calls `gone` once if the client goes away before its response is complete (at once if it has). */
export function onClientGone(c: Context<AppEnv>, gone: () => void): void {
  const outgoing = c.env?.outgoing;
  if (!outgoing) {
    const signal = c.req.raw.signal;
    if (signal.aborted) gone();
    else signal.addEventListener("abort", gone, { once: true });
    return;
  }
  if (clientGone(c)) {
    gone();
    return;
  }
  // Node emits `close` on every response, complete or not; it is the last event either way,
  // and the listener goes with the response object.
  outgoing.once("close", () => {
    if (!outgoing.writableFinished) gone();
  });
}

/**
 * Sets a header of the response to come. With node underneath it goes on the ServerResponse,
 * which merges it with the headers the adapter writes; a JSON answer with only its
 * content-type then crosses @hono/node-server without any web Headers object.
 */
export function responseHeader(c: Context<AppEnv>, name: string, value: string): void {
  const outgoing = c.env?.outgoing;
  if (outgoing) outgoing.setHeader(name, value);
  else c.header(name, value);
}
