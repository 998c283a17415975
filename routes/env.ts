// The per-request values middleware puts on the Hono context.
import type { Logger } from "pino";
import type { RequestTelemetry } from "../src/telemetry/request.ts";

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
    /** Set on /v1/chat/completions only (routes/record-request.ts). */
    telemetry: RequestTelemetry | undefined;
  };
}
