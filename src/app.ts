// createApp(services) → the Hono app. Everything it needs comes in `services`, so a
// test can build as many apps as it likes.
import { randomUUID } from "node:crypto";
import { Hono } from "hono";
import { methodNotAllowed as methodNotAllowedMiddleware } from "hono/method-not-allowed";
import { adminRoutes } from "../routes/admin.ts";
import { limitBody, rateLimit, requireKey, requireMetricsKey } from "../routes/auth.ts";
import { chatRoutes } from "../routes/chat.ts";
import { completionRoutes } from "../routes/completions.ts";
import { dashboardRoutes } from "../routes/dashboard.ts";
import { embeddingRoutes } from "../routes/embeddings.ts";
import type { AppEnv } from "../routes/env.ts";
import { errorResponse, isExpected } from "../routes/errors.ts";
import { feedbackRoutes } from "../routes/feedback.ts";
import { fileRoutes } from "../routes/files.ts";
import { fineTuningRoutes } from "../routes/fine-tuning.ts";
import { healthRoutes } from "../routes/health.ts";
import { metricsRoutes } from "../routes/metrics.ts";
import { modelRoutes } from "../routes/models.ts";
import { clientGone, requestHeader, responseHeader } from "../routes/node-http.ts";
import { recordRequests } from "../routes/record-request.ts";
import { rerankRoutes } from "../routes/rerank.ts";
import { responseRoutes } from "../routes/responses.ts";
import { ModelLoadError } from "./engine/errors.ts";
import { methodNotAllowed, routeNotFound } from "./openai/errors.ts";
import type { Services } from "./services.ts";

/** Client-chosen request ids are echoed into logs and headers: keep them short and plain. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export function createApp(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.use(async (c, next) => {
    const given = requestHeader(c, "x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    c.set("requestId", requestId);
    c.set("log", services.logger.child({ requestId }));
    responseHeader(c, "x-request-id", requestId);
    await next();
  });

  for (const path of [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/rerank",
    "/v1/reranking",
    "/rerank",
  ]) {
    app.use(path, recordRequests(services));
  }

  app.use(
    methodNotAllowedMiddleware({
      app,
      onMethodNotAllowed: (c, allowed) => {
        c.header("allow", allowed.join(", "));
        return errorResponse(c, methodNotAllowed(c.req.method, c.req.path));
      },
    }),
  );

  // Keys first (a stranger learns nothing, not even a limit), then the key's rate limit, then sizes.
  // Without API_KEYS /v1 is open; without ADMIN_API_KEY /admin is.
  app.use("/v1/*", requireKey(services, "api"), rateLimit(services));
  // Rerank clients (llama-server's, Jina's, Cohere's) also call it outside /v1: the same door.
  app.use("/rerank", requireKey(services, "api"), rateLimit(services), limitBody(services.bodyLimitBytes));
  app.use("/admin/*", requireKey(services, "admin"));
  app.use("/v1/*", limitBody(services.bodyLimitBytes, services.uploadLimitBytes));
  app.use("/admin/*", limitBody(services.bodyLimitBytes));
  if (services.metricsAuth !== "none") app.use("/metrics", requireMetricsKey(services, services.metricsAuth));

  app.route("/", healthRoutes(services));
  app.route("/v1/chat/completions", chatRoutes(services));
  app.route("/v1/completions", completionRoutes(services));
  app.route("/v1/embeddings", embeddingRoutes(services));
  app.route("/v1/responses", responseRoutes(services));
  for (const path of ["/v1/rerank", "/v1/reranking", "/rerank"]) app.route(path, rerankRoutes(services));
  app.route("/v1/models", modelRoutes(services));
  app.route("/v1/feedback", feedbackRoutes(services));
  app.route("/v1/files", fileRoutes(services));
  app.route("/v1/fine_tuning", fineTuningRoutes(services));
  app.route("/", metricsRoutes(services));
  app.route("/admin", adminRoutes(services));
  app.route("/dashboard", dashboardRoutes(services));

  app.notFound((c) => errorResponse(c, routeNotFound(c.req.method, c.req.path)));
  // The one error handler: sub-apps have none of their own (Hono would send their errors there
  // instead), so whatever a route did not expect is logged here with its stack, once.
  app.onError((err, c) => {
    if (!isExpected(err) && !clientGone(c)) c.get("log")?.error({ err }, "unhandled error");
    // The client's 503 names no file (routes/errors.ts); the log keeps why the model is unavailable.
    else if (err instanceof ModelLoadError)
      c.get("log")?.warn(
        { model: err.model, path: services.pool.spec(err.model)?.path, reason: err.message },
        "model unavailable",
      );
    return errorResponse(c, err);
  });
  return app;
}
