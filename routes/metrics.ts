// GET /metrics: the app's Prometheus registry in the text exposition format. Open, as
// exporters usually are: it shows counts and timings, never keys, ids or text.
import { Hono } from "hono";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";

export function metricsRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.get("/metrics", async (c) => {
    const { registry } = services.telemetry;
    return c.body(await registry.metrics(), 200, { "content-type": registry.contentType });
  });
  return app;
}
