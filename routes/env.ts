// The per-request values middleware puts on the Hono context, and what the node adapter binds.
import type { HttpBindings } from "@hono/node-server";
import type { Logger } from "pino";
import type { Caller } from "../src/security/api-keys.ts";
import type { RequestTelemetry } from "../src/telemetry/request.ts";

export interface AppEnv {
  /** node's request and response; absent when the app is called without the node adapter (app.request()). */
  Bindings: Partial<HttpBindings> | undefined;
  Variables: {
    requestId: string;
    log: Logger;
    /** Set on /v1 and /admin by the key check (routes/auth.ts). */
    caller: Caller;
    /** Set on /v1/chat/completions only (routes/record-request.ts). */
    telemetry: RequestTelemetry | undefined;
  };
}
