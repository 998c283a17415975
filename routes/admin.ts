// Admin API (behind ADMIN_API_KEY, checked in src/app.ts).
// GET /admin/usage?group_by=model|variant|key&since=…&until=…: usage per group.
// DELETE /admin/cache[?model=ID]: purges the response cache, or one model's entries.
import { Hono } from "hono";
import { z } from "zod";
import { fromZodError, invalidRequest, modelNotFound } from "../src/openai/errors.ts";
import type { Services } from "../src/services.ts";
import { GROUP_BY, UsageSummary } from "../src/telemetry/summary.ts";
import { usageRange } from "../src/telemetry/time-range.ts";
import type { AppEnv } from "./env.ts";
import { errorResponse } from "./errors.ts";

const UsageQuery = z.strictObject({
  group_by: z.enum(GROUP_BY).default("model"),
  since: z.string().optional(),
  until: z.string().optional(),
});

export function adminRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/usage", async (c) => {
    const parsed = UsageQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const { group_by, since, until } = parsed.data;
    const range = usageRange(since, until, new Date());
    if (!range.ok) throw invalidRequest(range.message, range.param);
    const summary = new UsageSummary(group_by);
    for await (const record of services.telemetry.usage.query(range.since, range.until)) summary.add(record);
    return c.json({
      object: "list",
      group_by,
      since: range.since.toISOString(),
      until: range.until.toISOString(),
      data: summary.result(),
    });
  });

  app.delete("/cache", async (c) => {
    const model = c.req.query("model");
    if (model !== undefined && !services.catalog.find(model)) throw modelNotFound(model);
    // An alias purges the model it names: entries are keyed by the serving model's id.
    const modelId = model === undefined ? undefined : services.catalog.find(model)?.id;
    const deleted = services.cache ? await services.cache.purge(modelId) : 0;
    return c.json({ object: "cache.purge", model: modelId ?? null, deleted });
  });

  app.onError((err, c) => errorResponse(c, err));
  return app;
}
