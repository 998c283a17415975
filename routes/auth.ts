// Middleware in front of the API areas: bearer keys (src/security/api-keys.ts), per-key rate
// limits (src/security/rate-limiter.ts) and body size limits, each refusal in OpenAI's envelope.
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { payloadTooLarge } from "../src/openai/errors.ts";
import { type Area, authorize } from "../src/security/api-keys.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse } from "./errors.ts";
import { clientAddress, requestHeader } from "./node-http.ts";

export function requireKey(services: Services, area: Area): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const caller = services.keys.caller(requestHeader(c, "authorization"), clientAddress(c));
    const refused = authorize(area, caller.credential, services.keys.configured);
    if (refused) return errorResponse(c, refused);
    c.set("caller", caller);
    return next();
  };
}

/**
 * metrics.auth on /metrics: `api` lets in any API key and the admin key (an operator's
 * scraper may hold either), `admin` the admin key only. A kind of key not configured leaves
 * it open, as for the other areas.
 */
export function requireMetricsKey(services: Services, auth: "api" | "admin"): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const caller = services.keys.caller(requestHeader(c, "authorization"), clientAddress(c));
    const refused = authorize(auth, caller.credential, services.keys.configured);
    if (refused) return errorResponse(c, refused);
    return next();
  };
}

/**
 * Counts the request against its caller's limits: its key id with API_KEYS set; without, its
 * client address, unless its bearer string is one rate_limits.keys lists (a client cannot
 * escape the default by inventing tokens). The same id as the usage log's key_id, which the
 * token counts use.
 */
export function rateLimit(services: Services): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const limiter = services.rateLimiter;
    if (limiter === undefined) return next();
    const caller = c.get("caller");
    const key = caller.open && limiter.lists(caller.keyId) ? caller.keyId : caller.limitKey;
    const refused = await limiter.admit(key);
    if (refused) return errorResponse(c, refused);
    return next();
  };
}

/**
 * `limit` bytes of body; uploads to POST /v1/files get `uploadLimit`. Checked as the body
 * streams in, except an upload's without a declared length: the upload route reads node's
 * request itself (routes/multipart.ts) and counts its bytes there.
 */
export function limitBody(limit: number, uploadLimit = limit): MiddlewareHandler<AppEnv> {
  const body = bodyLimit({ maxSize: limit, onError: (c) => errorResponse(c, payloadTooLarge(limit)) });
  return (c, next) => {
    const isUpload = c.req.method === "POST" && c.req.path === "/v1/files";
    // A declared length (node's parser holds the body to it) is checked from the header alone:
    // bodyLimit reads `c.req.raw.body`, for which @hono/node-server builds a whole web Request
    // around the socket, a cost every chat request would pay.
    const length = requestHeader(c, "content-length");
    if (length !== undefined && /^\d+$/.test(length) && requestHeader(c, "transfer-encoding") === undefined) {
      const maxSize = isUpload ? uploadLimit : limit;
      return Number(length) > maxSize ? Promise.resolve(errorResponse(c, payloadTooLarge(maxSize))) : next();
    }
    return isUpload ? next() : body(c, next);
  };
}
