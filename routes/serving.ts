// What every serving route tells the pipeline about its request (headers, the user, telemetry,
// the abort signal), and the headers it answers with.
import type { Context } from "hono";
import type { ServeContext, Served } from "../src/serve/pipeline.ts";
import type { Route } from "../src/traffic/traffic.ts";
import type { AppEnv } from "./env.ts";
import { onClientGone, requestHeader, responseHeader } from "./node-http.ts";

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
    cacheControl: requestHeader(c, "cache-control"),
    telemetry: c.get("telemetry"),
    hooks: { requestId: c.get("requestId"), log: c.get("log") },
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
