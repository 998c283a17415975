// The node HTTP server in front of the app. Requests refused before any route sees them get
// OpenAI's envelope too: those node's parser rejects (a malformed request line or header,
// headers past the size limit, a request too slow to arrive) and those the Hono adapter
// cannot turn into a URL (a backslash in the path, a bad Host header), which it would
// otherwise answer with an empty 400.
import { createServer, type Server } from "node:http";
import type { Socket } from "node:net";
import { getRequestListener } from "@hono/node-server";
import type { Hono } from "hono";
import type { Logger } from "pino";
import { ApiError, errorBody } from "../src/openai/errors.ts";
import type { AppEnv } from "./env.ts";

const PARSER_REFUSALS: Record<string, { status: number; reason: string; message: string }> = {
  HPE_HEADER_OVERFLOW: {
    status: 431,
    reason: "Request Header Fields Too Large",
    message: "The request's headers are too large.",
  },
};
const MALFORMED = { status: 400, reason: "Bad Request", message: "Malformed HTTP request: it could not be parsed." };

export interface HttpServerOptions {
  /** Stands in for a missing Host header (HTTP/1.0 clients), as @hono/node-server's serve() does. */
  hostname?: string;
  /** Longest time to receive a whole request, headers and body (limits.body_timeout); node's 5 minutes otherwise. */
  bodyTimeoutMs?: number;
  logger?: Logger;
}

export function createHttpServer(app: Hono<AppEnv>, options: HttpServerOptions = {}): Server {
  const { hostname, bodyTimeoutMs, logger } = options;
  const listener = getRequestListener(app.fetch, {
    ...(hostname === undefined ? {} : { hostname }),
    errorHandler: (err) => {
      // Only reached when no Request could be built; the app's own errors never get here.
      const message = `Malformed request URL: ${err instanceof Error ? err.message : "it could not be parsed"}.`;
      return new Response(JSON.stringify(errorBody(new ApiError(400, message, { code: "bad_request" }))), {
        status: 400,
        headers: { "content-type": "application/json" },
      });
    },
  });
  // node answers an HTTP/1.1 request without Host (RFC 9112 §3.2) with an empty 400 of its own
  // unless told not to; it gets the same 400 here, in the envelope.
  const timeouts =
    bodyTimeoutMs === undefined
      ? {}
      : {
          requestTimeout: bodyTimeoutMs,
          headersTimeout: Math.min(60_000, bodyTimeoutMs),
          // How often node looks for requests past the limit (30 s by default, as long as the limit itself).
          connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(bodyTimeoutMs / 4))),
        };
  const server = createServer({ requireHostHeader: false, ...timeouts }, (req, res) => {
    if (req.httpVersion === "1.1" && req.headers.host === undefined) {
      const body = JSON.stringify(
        errorBody(new ApiError(400, "HTTP/1.1 requests need a Host header.", { code: "bad_request" })),
      );
      res.writeHead(400, { "content-type": "application/json", connection: "close" }).end(body);
      return;
    }
    void listener(req, res);
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    // Only on a connection that has sent nothing yet: otherwise a response is under way on it.
    if (err.code === "ECONNRESET" || !socket.writable || socket.bytesWritten > 0) {
      socket.destroy();
      return;
    }
    if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      // A client's slowness, not a server fault: one info line, no stack.
      logger?.info({ limitMs: bodyTimeoutMs, remote: socket.remoteAddress }, "request did not arrive in time");
      const seconds = bodyTimeoutMs === undefined ? "" : ` (${bodyTimeoutMs / 1000} s)`;
      refuse(socket, {
        status: 408,
        reason: "Request Timeout",
        message: `The request did not arrive in time: limits.body_timeout${seconds} passed before its body was complete.`,
      });
      return;
    }
    refuse(socket, (err.code && PARSER_REFUSALS[err.code]) || MALFORMED);
  });
  return server;
}

/** Answers on the raw socket (no request object exists for it) and closes the connection. */
function refuse(socket: Socket, refusal: { status: number; reason: string; message: string }): void {
  const code = refusal.status === 408 ? "request_timeout" : "bad_request";
  const body = JSON.stringify(errorBody(new ApiError(refusal.status, refusal.message, { code })));
  socket.end(
    `HTTP/1.1 ${refusal.status} ${refusal.reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}
