// POST /v1/chat/completions: validate, route (experiment variant, fallbacks), run through the
// cache, answer as JSON or SSE.
import { randomBytes } from "node:crypto";
import { Hono } from "hono";
import { stream } from "hono/streaming";
import { cacheKey } from "../src/cache/key.ts";
import { decideCaching } from "../src/cache/policy.ts";
import { serveWithCache } from "../src/cache/serve.ts";
import { ChatCompletionRequest, checkSupported } from "../src/openai/chat.ts";
import { type CompletionMeta, collect, toChunks, usageChunk } from "../src/openai/completion.ts";
import { fromZodError } from "../src/openai/errors.ts";
import { SSE_DONE, SSE_HEADERS, sseError, sseEvent } from "../src/openai/sse.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse, toHttpError } from "./errors.ts";
import { readJson } from "./json.ts";

export function chatRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const body = await readJson(c);
    const named = (body as { model?: unknown } | null)?.model;
    const telemetry = c.get("telemetry");
    telemetry?.requested(body, typeof named === "string" ? services.traffic.attribution(named) : undefined);
    // reportInput lets the error say what was sent ("got \"hot\"") and tell a wrong type from a missing one.
    const parsed = ChatCompletionRequest.safeParse(body, { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const req = parsed.data;
    const refused = checkSupported(req);
    if (refused) throw refused;
    const route = services.traffic.route(req.model, {
      header: (name) => c.req.header(name),
      user: req.user,
      safetyIdentifier: req.safety_identifier,
    });
    if (route.experiment) {
      telemetry?.assigned(route.experiment.name, route.experiment.variant);
      c.header("x-switchyard-experiment", route.experiment.name);
      c.header("x-switchyard-variant", route.experiment.variant);
    }

    // Generation stops as soon as the client goes away, streaming or not.
    const abort = new AbortController();
    c.req.raw.signal.addEventListener("abort", () => abort.abort(), { once: true });
    // Each target in the route's order, until one admits the request; the cache key is the serving model's.
    const { model: target, result: served } = await services.traffic.serve(
      route,
      (model) => {
        telemetry?.routedTo(model);
        const temperature = services.defaultTemperature(model.id);
        const decision = decideCaching(req, services.cacheMode, c.req.header("cache-control"), temperature);
        const key = cacheKey({ modelId: model.id, modelDigest: services.modelDigest(model.id) }, req);
        return serveWithCache(services.cache, key, decision, { model: model.id, choices: req.n ?? 1 }, () =>
          services.providers[model.provider].chat(model.id, req, { signal: abort.signal }),
        );
      },
      { requestId: c.get("requestId"), log: c.get("log"), fellBack: () => telemetry?.fellBack() },
    );
    c.header("x-switchyard-cache", served.status);
    telemetry?.cached(served.cacheError ? "error" : served.status);
    // A hit generated nothing: telemetry counts 0 engine tokens, the client still gets the original usage.
    const watched =
      served.status === "hit"
        ? { ...served.stream, usage: () => ({ promptTokens: 0, completionTokens: 0 }) }
        : served.stream;
    const result = telemetry ? { ...telemetry.watch(watched), usage: served.stream.usage } : served.stream;

    const meta: CompletionMeta = {
      id: `chatcmpl-${randomBytes(12).toString("base64url")}`,
      created: Math.floor(Date.now() / 1000),
      model: target.id,
      systemFingerprint: services.fingerprint(target.id),
    };
    c.header("x-switchyard-model", target.id);

    if (!req.stream) {
      try {
        return c.json(await collect(result.events, meta, result.usage));
      } finally {
        abort.abort();
      }
    }

    for (const [name, value] of Object.entries(SSE_HEADERS)) c.header(name, value);
    const includeUsage = req.stream_options?.include_usage === true;
    telemetry?.respondingLater();
    return stream(c, async (out) => {
      out.onAbort(() => abort.abort());
      try {
        for await (const chunk of toChunks(result.events, meta, includeUsage)) {
          await out.write(sseEvent(chunk));
        }
        if (includeUsage) await out.write(sseEvent(usageChunk(meta, result.usage())));
        await out.write(SSE_DONE);
      } catch (err) {
        // The status line is gone; OpenAI's SDKs raise on a data event holding `error`.
        const api = toHttpError(err);
        telemetry?.failed(api);
        if (!out.aborted) await out.write(sseError(api));
      } finally {
        abort.abort();
        telemetry?.end(200, out.aborted || c.req.raw.signal.aborted);
      }
    });
  });

  app.onError((err, c) => errorResponse(c, err));
  return app;
}
