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
    // A model a fine-tuning worker registered moments ago may not be served here yet: look before a 404.
    if (!services.catalog.find(req.model)) await services.fineTuning.ensureServed(req.model);
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

    // Generation stops as soon as the client goes away, streaming or not. The controller is made
    // only when a provider is asked (once, however many fallbacks): a cache hit or a refusal has
    // nothing to stop, and the controller and its listener were ~6% of a hit's CPU.
    let abort: AbortController | undefined;
    // Each target in the route's order, until one admits the request; the cache key is the serving model's.
    const { model: target, result: served } = await services.traffic.serve(
      route,
      (model) => {
        // Local and upstream models support different things; refused before the cache, so a
        // hit can never answer what the model would have refused.
        const refused = checkSupported(req, model.provider === "openai" ? "upstream" : "local");
        if (refused) throw refused;
        telemetry?.routedTo(model);
        const temperature = services.defaultTemperature(model.id);
        const decision = decideCaching(req, services.cacheMode, c.req.header("cache-control"), temperature);
        const key = cacheKey({ modelId: model.id, modelDigest: services.modelDigest(model.id) }, req);
        return serveWithCache(services.cache, key, decision, { model: model.id, choices: req.n ?? 1 }, () => {
          abort ??= providerAbort(c.req.raw.signal);
          return services.providers[model.provider].chat(model.id, req, { signal: abort.signal });
        });
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
        abort?.abort(RESPONSE_DONE);
      }
    }

    for (const [name, value] of Object.entries(SSE_HEADERS)) c.header(name, value);
    const includeUsage = req.stream_options?.include_usage === true;
    telemetry?.respondingLater();
    return stream(c, async (out) => {
      out.onAbort(() => abort?.abort(CLIENT_GONE));
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
        abort?.abort(RESPONSE_DONE);
        telemetry?.end(200, out.aborted || c.req.raw.signal.aborted);
      }
    });
  });

  app.onError((err, c) => errorResponse(c, err));
  return app;
}

/**
 * The listener that stops generation when the client goes away. The node adapter's request
 * signal (c.req.raw.signal) is held by undici's FinalizationRegistry until the request itself
 * is collected, so whatever hangs off that signal must never lead back to the request, or every
 * request ever served stays in memory (25-30 KB each, found by the disconnect suite). Hence a
 * listener built out here, holding the controller and nothing else (an arrow function in the
 * handler shares its scope with `c`), removed once the request is over (`signal` in providerAbort), and
 * abort reasons made once, here: abort() without one makes a DOMException whose stack holds
 * the closures of the calls it was made in, and through them the request.
 */
function forwardAbort(abort: AbortController): () => void {
  return () => abort.abort(CLIENT_GONE);
}

/** The controller a provider's generation listens to, aborted when `request` (the client's signal) is. */
function providerAbort(request: AbortSignal): AbortController {
  const abort = new AbortController();
  // The client may have gone while the request waited (cache lookup, fine-tuned model check).
  if (request.aborted) abort.abort(CLIENT_GONE);
  else request.addEventListener("abort", forwardAbort(abort), { once: true, signal: abort.signal });
  return abort;
}

const CLIENT_GONE = new DOMException("The client went away.", "AbortError");
const RESPONSE_DONE = new DOMException("The response is complete.", "AbortError");
