// Middleware in front of /v1/chat/completions, ahead of auth and body limits, so every
// request to it (refused, failed, streamed or abandoned) leaves exactly one usage record.
import type { MiddlewareHandler } from "hono";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { clientAddress, clientGone, requestHeader } from "./node-http.ts";

export function recordRequests(services: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const telemetry = services.telemetry.begin(c.get("requestId"), requestHeader(c, "authorization"), clientAddress(c));
    c.set("telemetry", telemetry);
    try {
      await next();
    } finally {
      // A streamed answer ends the record itself when the stream is over.
      if (!telemetry.endsItself) telemetry.end(c.res.status, clientGone(c));
    }
  };
}
