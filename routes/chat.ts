// POST /v1/chat/completions: validate, route (experiment variant, fallbacks), run through the
// cache, answer as JSON or SSE.
import { randomUUID } from "node:crypto";
import { type Context, Hono } from "hono";
import { cacheKey } from "../src/cache/key.ts";
import { decideCaching } from "../src/cache/policy.ts";
import { serveWithCache } from "../src/cache/serve.ts";
import { ChatCompletionRequest, checkSupported } from "../src/openai/chat.ts";
import { type CompletionMeta, collect, toChunks, usageChunk } from "../src/openai/completion.ts";
import { fromZodError } from "../src/openai/errors.ts";
import { SSE_DONE, sseError, sseEvent } from "../src/openai/sse.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { toHttpError } from "./errors.ts";
import { readJson } from "./json.ts";
import { clientGone, onClientGone, requestHeader, responseHeader } from "./node-http.ts";
import { sendSse } from "./sse.ts";

export function chatRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const body = await readJson(c);
    const named = (body as { model?: unknown } | null)?.model;
    const telemetry = c.get("telemetry");
    telemetry?.requested(body, typeof named === "string" ? services.traffic.attribution(named) : undefined);
    const parsed = ChatCompletionRequest.safeParse(body);
    // Parsed again to explain a refusal: reportInput lets the error say what was sent ("got
    // \"hot\"") and tell a wrong type from a missing one, and costs every valid request ~2 µs.
    if (!parsed.success)
      throw fromZodError(ChatCompletionRequest.safeParse(body, { reportInput: true }).error ?? parsed.error);
    const req = parsed.data;
    // A model a fine-tuning worker registered moments ago may not be served here yet: look before a 404.
    if (!services.catalog.find(req.model)) await services.fineTuning.ensureServed(req.model);
    const route = services.traffic.route(req.model, {
      // Header names come from models.yaml, in whatever case the operator wrote them.
      header: (name) => requestHeader(c, name.toLowerCase()),
      user: req.user,
      safetyIdentifier: req.safety_identifier,
      caller: c.get("caller"),
    });
    if (route.experiment) {
      telemetry?.assigned(route.experiment.name, route.experiment.variant, route.experiment.forced);
      responseHeader(c, "x-roundhouse-experiment", route.experiment.name);
      responseHeader(c, "x-roundhouse-variant", route.experiment.variant);
    }

    // Generation stops as soon as the client goes away, streaming or not. The controller is made
    // only when a provider is asked (once, however many fallbacks): a cache hit or a refusal has
    // nothing to stop.
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
        const decision = decideCaching(req, services.cacheMode, requestHeader(c, "cache-control"), temperature);
        const keyOf = () => cacheKey({ modelId: model.id, modelDigest: services.modelDigest(model.id) }, req);
        return serveWithCache(services.cache, keyOf, decision, { model: model.id, choices: req.n ?? 1 }, () => {
          abort ??= providerAbort(c);
          return services.providers[model.provider].chat(model.id, req, { signal: abort.signal });
        });
      },
      {
        requestId: c.get("requestId"),
        owner: c.get("caller").tenant,
        log: c.get("log"),
        fellBack: () => telemetry?.fellBack(),
      },
    );
    responseHeader(c, "x-roundhouse-cache", served.status);
    telemetry?.cached(served.cacheError ? "error" : served.status);
    // A hit generated nothing: telemetry counts 0 engine tokens, the client still gets the original usage.
    const watched =
      served.status === "hit"
        ? { ...served.stream, usage: () => ({ promptTokens: 0, completionTokens: 0 }) }
        : served.stream;
    const result = telemetry ? { ...telemetry.watch(watched), usage: served.stream.usage } : served.stream;

    const meta: CompletionMeta = {
      // randomUUID draws from a pooled buffer; randomBytes() asks the kernel every call (~20 µs under load).
      id: `chatcmpl-${randomUUID().replaceAll("-", "")}`,
      created: Math.floor(Date.now() / 1000),
      model: target.id,
      systemFingerprint: services.fingerprint(target.id),
    };
    responseHeader(c, "x-roundhouse-model", target.id);

    if (!req.stream) {
      try {
        return c.json(await collect(result.events, meta, result.usage));
      } catch (err) {
        // Whatever failed, the provider must not go on generating for nobody.
        abort?.abort(RESPONSE_DONE);
        throw err;
      }
    }

    const includeUsage = req.stream_options?.include_usage === true;
    telemetry?.respondingLater();
    return sendSse(c, async (out) => {
      let complete = false;
      try {
        for await (const chunk of toChunks(result.events, meta, includeUsage)) {
          await out.write(sseEvent(chunk));
        }
        if (includeUsage) await out.write(sseEvent(usageChunk(meta, result.usage())));
        await out.write(SSE_DONE);
        complete = true;
      } catch (err) {
        // The status line is gone; OpenAI's SDKs raise on a data event holding `error`.
        const api = toHttpError(err);
        telemetry?.failed(api);
        if (!out.closed) await out.write(sseError(api));
      } finally {
        // Gone or failed: the provider stops (a client that went away has aborted it already).
        if (!complete) abort?.abort(out.closed ? CLIENT_GONE : RESPONSE_DONE);
        telemetry?.end(200, out.closed || clientGone(c));
      }
    });
  });

  return app;
}

/**
 * The controller a provider's generation listens to, aborted when the client goes away. The
 * listener holds the controller and nothing else (an arrow function in the handler would share
 * its scope with `c`), and the abort reasons are made once, here: abort() without one makes a
 * DOMException whose stack holds the closures of the calls it was made in.
 */
function providerAbort(c: Context<AppEnv>): AbortController {
  const abort = new AbortController();
  onClientGone(c, forwardAbort(abort));
  return abort;
}

function forwardAbort(abort: AbortController): () => void {
  return () => abort.abort(CLIENT_GONE);
}

const CLIENT_GONE = new DOMException("The client went away.", "AbortError");
const RESPONSE_DONE = new DOMException("The response is over.", "AbortError");
