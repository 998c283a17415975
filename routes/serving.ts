// What every serving route tells the pipeline about its request (headers, the user, telemetry,
// the abort signal), and the headers it answers with.
import type { Context } from "hono";
import type { z } from "zod";
import { type ApiError, fromZodError } from "../src/openai/errors.ts";
import { SSE_DONE, sseError, sseEvent } from "../src/openai/sse.ts";
import type { ServeContext, Served } from "../src/serve/pipeline.ts";
import type { Services } from "../src/services.ts";
import type { Route } from "../src/traffic/traffic.ts";
import type { AppEnv } from "./env.ts";
import { toHttpError } from "./errors.ts";
import { readJson } from "./json.ts";
import { clientGone, onClientGone, requestHeader, responseHeader } from "./node-http.ts";
import { sendSse } from "./sse.ts";

/**
 * Reads and validates a serving request's body. What it asks for is noted before validation,
 * so refused requests are attributed too. Parsed again to explain a refusal: reportInput lets
 * the error say what was sent ("got \"hot\"") and tell a wrong type from a missing one, and
 * costs every valid request ~2 µs.
 */
export async function parseRequest<S extends z.ZodType>(
  c: Context<AppEnv>,
  services: Services,
  schema: S,
): Promise<z.output<S>> {
  const body = await readJson(c);
  const named = (body as { model?: unknown } | null)?.model;
  c.get("telemetry")?.requested(body, typeof named === "string" ? services.traffic.attribution(named) : undefined);
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw fromZodError(schema.safeParse(body, { reportInput: true }).error ?? parsed.error);
  return parsed.data;
}

export interface RouteServing extends ServeContext {
  /** The controller behind signal(), once a provider was asked: a cache hit or a refusal has nothing to stop. */
  controller(): AbortController | undefined;
}

export function servingContext(
  c: Context<AppEnv>,
  req: { user?: string | null | undefined; safety_identifier?: string | null | undefined },
): RouteServing {
  let abort: AbortController | undefined;
  return {
    // Header names come from models.yaml, in whatever case the operator wrote them.
    header: (name) => requestHeader(c, name.toLowerCase()),
    user: req.user,
    safetyIdentifier: req.safety_identifier,
    // Who asks: forcing a variant is the admin's or an experiment's force_keys', and the
    // request is remembered for feedback under its tenant.
    caller: c.get("caller"),
    cacheControl: requestHeader(c, "cache-control"),
    telemetry: c.get("telemetry"),
    hooks: {
      requestId: c.get("requestId"),
      log: c.get("log"),
      owner: c.get("caller").tenant,
      viewer: c.get("caller").viewer,
    },
    // Generation stops as soon as the client goes away, streaming or not.
    signal: () => {
      abort ??= providerAbort(c);
      return abort.signal;
    },
    controller: () => abort,
    routed: (route: Route) => {
      if (!route.experiment) return;
      responseHeader(c, "x-roundhouse-experiment", route.experiment.name);
      responseHeader(c, "x-roundhouse-variant", route.experiment.variant);
    },
  };
}

/** x-roundhouse-model and -cache, once a model answered (the experiment's headers are set on routing). */
export function servedHeaders(c: Context<AppEnv>, served: Served<unknown>): void {
  responseHeader(c, "x-roundhouse-cache", served.cache);
  responseHeader(c, "x-roundhouse-model", served.model.id);
}

/** How an endpoint frames its stream; chat and legacy completions use OpenAI's defaults. */
export interface StreamFraming {
  /** A usage chunk after the last one, when the client asked for it. */
  usageChunk?: (() => object) | undefined;
  /** One event; default `data: <json>`. */
  frame?: (chunk: object) => string;
  /** After the last event; default `data: [DONE]`. */
  done?: string;
  /** The event for a failure after the status line; default the error envelope as data. */
  failure?: (err: ApiError) => string;
}

/**
 * Streams an answer's chunks as SSE, then its usage chunk when asked, then the end. An error
 * after the status line goes out as an event (the SDKs raise on it); gone or failed, the
 * provider stops; the request's telemetry ends with the stream.
 */
export function streamAnswer(
  c: Context<AppEnv>,
  serving: RouteServing,
  chunks: AsyncIterable<object>,
  framing: StreamFraming = {},
): Response | Promise<Response> {
  const { frame = sseEvent, done = SSE_DONE, failure = sseError } = framing;
  const telemetry = serving.telemetry;
  telemetry?.respondingLater();
  return sendSse(c, async (out) => {
    let complete = false;
    try {
      for await (const chunk of chunks) await out.write(frame(chunk));
      if (framing.usageChunk) await out.write(frame(framing.usageChunk()));
      if (done) await out.write(done);
      complete = true;
    } catch (err) {
      const api = toHttpError(err);
      telemetry?.failed(api);
      if (!out.closed) await out.write(failure(api));
    } finally {
      // A client that went away has aborted the provider already.
      if (!complete) serving.controller()?.abort(out.closed ? CLIENT_GONE : RESPONSE_DONE);
      telemetry?.end(200, out.closed || clientGone(c));
    }
  });
}

/** A JSON answer: whatever failed while collecting it, the provider must not go on generating for nobody. */
export async function collectAnswer<T>(serving: RouteServing, collect: () => Promise<T>): Promise<T> {
  try {
    return await collect();
  } catch (err) {
    serving.controller()?.abort(RESPONSE_DONE);
    throw err;
  }
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

export const CLIENT_GONE = new DOMException("The client went away.", "AbortError");
export const RESPONSE_DONE = new DOMException("The response is over.", "AbortError");
