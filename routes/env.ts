// The per-request values middleware puts on the Hono context.
import type { Logger } from "pino";

export interface AppEnv {
  Variables: {
    requestId: string;
    log: Logger;
  };
}
