// Server-sent events out to the client. With node underneath, the events go straight onto the
// ServerResponse; Hono's stream() helper (the fallback, for app.request() in tests) passes every
// event through a web TransformStream, a TextEncoder and the adapter's stream reader, which on
// a streamed reply of ~20 chunks cost more CPU than the proxying itself (~75 µs of 560 per
// reply at 32 concurrent streams; issue #8's note).
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import type { Context } from "hono";
import { stream } from "hono/streaming";
import { SSE_HEADERS } from "../src/openai/sse.ts";
import type { AppEnv } from "./env.ts";
import { clientGone } from "./node-http.ts";

export interface SseSink {
  /** Resolves when the client can take more: the caller waits, so a slow client slows the source. */
  write(event: string): Promise<void> | undefined;
  /** The client went away; writes are dropped. */
  readonly closed: boolean;
}

/**
 * How long a stream waits for a client that stopped reading before it cuts the connection.
 * While it waits, `write` does not resolve, so the route stops pulling events and at most the
 * socket's buffer (its high-water mark plus one event) is held here; past it the connection
 * goes, which aborts generation and frees the model's sequence.
 */
export const STALL_MS = 30_000;

export interface SseOptions {
  /** STALL_MS unless given (tests). */
  stallMs?: number;
}

/** Answers with an event stream that `send` writes; the response ends when `send` settles. */
export function sendSse(
  c: Context<AppEnv>,
  send: (sink: SseSink) => Promise<void>,
  options: SseOptions = {},
): Response {
  const stallMs = options.stallMs ?? STALL_MS;
  const outgoing = c.env?.outgoing;
  if (!outgoing) {
    for (const [name, value] of Object.entries(SSE_HEADERS)) c.header(name, value);
    return stream(c, (out) =>
      send({
        write: (event) => out.write(event).then(() => undefined),
        get closed() {
          return out.aborted;
        },
      }),
    );
  }
  // Headers set earlier on the response (responseHeader) are merged in; they go out with the first event.
  outgoing.writeHead(200, SSE_HEADERS);
  const sink: SseSink = {
    write: (event) => {
      if (outgoing.destroyed || outgoing.write(event)) return undefined;
      return new Promise<void>((resolve) => {
        const stalled = setTimeout(() => {
          c.get("log")?.info(
            { bufferedBytes: outgoing.writableLength, stallMs },
            "client stopped reading the event stream; connection cut",
          );
          outgoing.destroy();
        }, stallMs);
        const go = () => {
          clearTimeout(stalled);
          outgoing.off("drain", go);
          outgoing.off("close", go);
          resolve();
        };
        outgoing.on("drain", go);
        outgoing.on("close", go);
      });
    },
    get closed() {
      return clientGone(c);
    },
  };
  send(sink)
    .catch(() => {
      // `send` reports its own failures in the stream; nothing is left to tell the client.
    })
    .finally(() => {
      if (!outgoing.destroyed) outgoing.end();
    });
  // Tells the adapter that the response is being written already.
  return RESPONSE_ALREADY_SENT;
}
