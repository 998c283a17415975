// Every failure → OpenAI's error envelope with the right status, in one place.
import type { Context } from "hono";
import { AbortedError, ModelLoadError, QueueFullError, QueueTimeoutError } from "../src/engine/errors.ts";
import { ApiError, errorBody, internal, rateLimited, serviceUnavailable } from "../src/openai/errors.ts";
import { withoutPaths } from "../src/openai/redact.ts";
import type { AppEnv } from "./env.ts";
import { clientGone } from "./node-http.ts";

/** An error the server means to answer with (a client's mistake, a full queue, a model that cannot load), not a bug. */
export function isExpected(err: unknown): boolean {
  return (
    err instanceof ApiError ||
    err instanceof QueueFullError ||
    err instanceof QueueTimeoutError ||
    err instanceof ModelLoadError ||
    err instanceof AbortedError
  );
}

export function toHttpError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof QueueFullError) return rateLimited(err.retryAfterSeconds, err.message);
  if (err instanceof QueueTimeoutError) return serviceUnavailable(err.message, 1);
  if (err instanceof ModelLoadError) {
    return new ApiError(503, withoutPaths(err.message), { type: "server_error", code: "model_unavailable" });
  }
  if (err instanceof AbortedError) return new ApiError(499, err.message, { code: "client_closed_request" });
  return internal();
}

export function errorResponse(c: Context<AppEnv>, err: unknown): Response {
  // A body that failed to arrive because its client went away is the client's doing, not a 500.
  const gone = !(err instanceof ApiError) && clientGone(c);
  const api = gone ? toHttpError(new AbortedError()) : toHttpError(err);
  c.get("telemetry")?.failed(api);
  if (api.retryAfterSeconds !== undefined) c.header("retry-after", String(api.retryAfterSeconds));
  return c.json(errorBody(api), api.status as 400);
}
