// GET /healthz: 200 once the preloaded models are loaded, 503 before (and while draining).
import { Hono } from "hono";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";

export function healthRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/healthz", (c) => {
    const status = services.health();
    return c.json(status, status.ready ? 200 : 503);
  });
  return app;
}
