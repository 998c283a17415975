// createApp(services) → the Hono app. Everything it needs comes in `services`, so a
// test can build as many apps as it likes.
import { randomUUID, timingSafeEqual } from "node:crypto";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { methodNotAllowed as methodNotAllowedMiddleware } from "hono/method-not-allowed";
import { adminRoutes } from "../routes/admin.ts";
import { chatRoutes } from "../routes/chat.ts";
import type { AppEnv } from "../routes/env.ts";
import { errorResponse } from "../routes/errors.ts";
import { feedbackRoutes } from "../routes/feedback.ts";
import { fileRoutes } from "../routes/files.ts";
import { fineTuningRoutes } from "../routes/fine-tuning.ts";
import { healthRoutes } from "../routes/health.ts";
import { metricsRoutes } from "../routes/metrics.ts";
import { modelRoutes } from "../routes/models.ts";
import { recordRequests } from "../routes/record-request.ts";
import {
  invalidApiKey,
  methodNotAllowed,
  missingApiKey,
  payloadTooLarge,
  permissionDenied,
  routeNotFound,
} from "./openai/errors.ts";
import type { Services } from "./services.ts";

/** Client-chosen request ids are echoed into logs and headers: keep them short and plain. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createApp(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const given = c.req.header("x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", requestId);
    c.set("log", services.logger.child({ requestId }));
    c.header("x-request-id", requestId);
    await next();
  });

  app.use("/v1/chat/completions", recordRequests(services));

  app.use(
    methodNotAllowedMiddleware({
      app,
      onMethodNotAllowed: (c, allowed) => {
        c.header("allow", allowed.join(", "));
        return errorResponse(c, methodNotAllowed(c.req.method, c.req.path));
      },
    }),
  );

  app.use("/v1/*", async (c, next) => {
    if (services.apiKeys.length === 0) return next();
    const token = bearerToken(c.req.header("authorization"));
    if (token === "") return errorResponse(c, missingApiKey());
    if (!services.apiKeys.some((key) => sameSecret(token, key))) return errorResponse(c, invalidApiKey());
    return next();
  });

  // Without ADMIN_API_KEY the admin routes are as open as /v1 without API_KEYS.
  app.use("/admin/*", async (c, next) => {
    const admin = services.adminApiKey;
    if (admin === undefined) return next();
    const token = bearerToken(c.req.header("authorization"));
    if (token === "") return errorResponse(c, missingApiKey());
    if (sameSecret(token, admin)) return next();
    if (services.apiKeys.some((key) => sameSecret(token, key))) {
      return errorResponse(c, permissionDenied("This endpoint needs the admin API key; API keys cannot use it."));
    }
    return errorResponse(c, invalidApiKey());
  });

  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: services.bodyLimitBytes,
      onError: (c) => errorResponse(c, payloadTooLarge(services.bodyLimitBytes)),
    }),
  );

  app.route("/", healthRoutes(services));
  app.route("/v1/chat/completions", chatRoutes(services));
  app.route("/v1/models", modelRoutes(services));
  app.route("/v1/feedback", feedbackRoutes(services));
  app.route("/v1/files", fileRoutes(services));
  app.route("/v1/fine_tuning", fineTuningRoutes(services));
  app.route("/", metricsRoutes(services));
  app.route("/admin", adminRoutes(services));

  app.notFound((c) => errorResponse(c, routeNotFound(c.req.method, c.req.path)));
  app.onError((err, c) => {
    c.get("log")?.error({ err }, "unhandled error");
    return errorResponse(c, err);
  });
  return app;
}

function bearerToken(header: string | undefined): string {
  return header?.startsWith("Bearer ") ? header.slice(7).trim() : "";
}

/** Constant-time comparison, so response timing does not reveal how much of a key matched. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
