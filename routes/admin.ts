// Admin API (behind ADMIN_API_KEY, checked in src/app.ts).
// GET /admin/usage?group_by=model|variant|key&since=…&until=…: usage per group.
// DELETE /admin/cache[?model=ID]: purges the response cache, or one model's entries.
// GET /admin/experiments[/NAME][?since=…&until=…]: per-variant results and tests against control.
// POST /admin/experiments/NAME/variants/VARIANT/restore: undoes a rollback.
// PUT|POST /admin/experiments/NAME/weights {"weights": {"VARIANT": 50}}: run-time weights.
// GET /admin/timeseries?group_by=model|variant&since=…&until=…&step=SECONDS: usage over time.
// GET /admin/models: served models; local ones with their memory, busy sequences and queue.
// POST /admin/models/ID/load, /admin/models/ID/unload: a local model loaded now, or freed (409 while busy).
// GET /admin/fine_tuning/jobs[/ID/events|/ID/checkpoints]: every tenant's jobs, with their tenant.
import { Hono } from "hono";
import { z } from "zod";
import { ApiError, fromZodError, invalidRequest, modelNotFound } from "../src/openai/errors.ts";
import { ListCheckpointsQuery, ListEventsQuery, ListJobsQuery } from "../src/openai/fine-tuning.ts";
import type { Services } from "../src/services.ts";
import { GROUP_BY, UsageSummary } from "../src/telemetry/summary.ts";
import { parseInstant, usageRange } from "../src/telemetry/time-range.ts";
import { defaultStep, MAX_BUCKETS, SERIES_GROUP_BY, TimeSeriesBuilder } from "../src/telemetry/timeseries.ts";
import type { AppEnv } from "./env.ts";
import { readJson } from "./json.ts";

const ResultsQuery = z.strictObject({
  since: z.string().optional(),
  until: z.string().optional(),
});

const WeightsBody = z.strictObject({
  weights: z.record(z.string(), z.number().min(0).max(1_000_000)).refine((w) => Object.keys(w).length > 0, {
    error: "name at least one variant",
  }),
});

const UsageQuery = z.strictObject({
  group_by: z.enum(GROUP_BY).default("model"),
  since: z.string().optional(),
  until: z.string().optional(),
});

const SeriesQuery = z.strictObject({
  group_by: z.enum(SERIES_GROUP_BY).default("model"),
  since: z.string().optional(),
  until: z.string().optional(),
  step: z.coerce.number().int().min(1).max(86_400).optional(),
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

  app.get("/timeseries", async (c) => {
    const parsed = SeriesQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const { group_by, since, until } = parsed.data;
    const range = usageRange(since, until, new Date());
    if (!range.ok) throw invalidRequest(range.message, range.param);
    const seconds = (range.until.getTime() - range.since.getTime()) / 1000;
    const step = parsed.data.step ?? defaultStep(seconds);
    if (seconds / step > MAX_BUCKETS) {
      throw invalidRequest(
        `step ${step} s gives more than ${MAX_BUCKETS} buckets over this range; make it larger.`,
        "step",
      );
    }
    const series = new TimeSeriesBuilder(group_by, range.since, range.until, step);
    for await (const record of services.telemetry.usage.query(range.since, range.until)) series.add(record);
    return c.json({
      object: "timeseries",
      since: range.since.toISOString(),
      until: range.until.toISOString(),
      ...series.result(),
    });
  });

  app.get("/models", (c) => {
    const data = services.catalog.list().map((m) => {
      const spec = services.pool.spec(m.id);
      const loaded = services.pool.get(m.id);
      return {
        id: m.id,
        provider: m.provider,
        aliases: m.aliases,
        loaded: loaded !== undefined,
        memory_bytes: loaded?.bytes ?? null,
        parallel: spec?.parallel ?? null,
        busy_sequences: loaded?.slots.busy ?? 0,
        queue_depth: loaded?.slots.waiting ?? 0,
      };
    });
    return c.json({ object: "list", data });
  });

  // The admin sees every tenant's jobs (no viewer), each with the tenant that owns it. Here rather
  // than only on /v1 (which the admin key also opens) so that the admin routes stay one area:
  // open or closed by ADMIN_API_KEY alone, and outside /v1's rate limits.
  app.get("/fine_tuning/jobs", async (c) => {
    const parsed = ListJobsQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const ft = services.fineTuning;
    const page = await ft.listJobs(parsed.data, undefined);
    const data = await Promise.all(page.data.map(async (j) => ({ ...j, tenant: (await ft.owners.of(j.id)) ?? null })));
    return c.json({ object: "list", ...page, data });
  });

  app.get("/fine_tuning/jobs/:id/events", async (c) => {
    const parsed = ListEventsQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    return c.json({ object: "list", ...(await services.fineTuning.events(c.req.param("id"), parsed.data, undefined)) });
  });

  app.get("/fine_tuning/jobs/:id/checkpoints", async (c) => {
    const parsed = ListCheckpointsQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const page = await services.fineTuning.checkpoints(c.req.param("id"), parsed.data, undefined);
    return c.json({ object: "list", ...page });
  });

  app.delete("/cache", async (c) => {
    const model = c.req.query("model");
    if (model !== undefined && !services.catalog.find(model)) throw modelNotFound(model);
    // An alias purges the model it names: entries are keyed by the serving model's id.
    const modelId = model === undefined ? undefined : services.catalog.find(model)?.id;
    const deleted = services.cache ? await services.cache.purge(modelId) : 0;
    return c.json({ object: "cache.purge", model: modelId ?? null, deleted });
  });

  app.get("/experiments", async (c) => {
    const range = resultsRange(c.req.query());
    return c.json({ object: "list", data: await services.traffic.allResults(range) });
  });

  app.get("/experiments/:name", async (c) => {
    return c.json(await services.traffic.results(c.req.param("name"), resultsRange(c.req.query())));
  });

  app.post("/experiments/:name/variants/:variant/restore", async (c) => {
    const name = c.req.param("name");
    const variants = await services.traffic.restore(name, c.req.param("variant"));
    return c.json({ object: "experiment.variants", experiment: name, data: variants });
  });

  app.on(["PUT", "POST"], "/experiments/:name/weights", async (c) => {
    const parsed = WeightsBody.safeParse(await readJson(c), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const name = c.req.param("name");
    const variants = await services.traffic.setWeights(name, parsed.data.weights);
    return c.json({ object: "experiment.variants", experiment: name, data: variants });
  });

  app.post("/models/:id/load", async (c) => {
    const id = localModel(services, c.req.param("id"));
    const started = performance.now();
    const wasLoaded = services.pool.isLoaded(id);
    await services.pool.load(id);
    return c.json({
      id,
      object: "model.load",
      loaded: true,
      already_loaded: wasLoaded,
      seconds: Math.round((performance.now() - started) / 10) / 100,
    });
  });

  app.post("/models/:id/unload", async (c) => {
    const id = localModel(services, c.req.param("id"));
    if (!(await services.pool.unloadIdle(id))) {
      const busy = services.pool.get(id)?.inFlight ?? 0;
      throw new ApiError(
        409,
        `Model ${id} has ${busy} request${busy === 1 ? "" : "s"} in flight or waiting; a busy model is not unloaded. Try again when it is idle.`,
        { code: "model_busy" },
      );
    }
    return c.json({ id, object: "model.unload", loaded: false });
  });

  return app;
}

/** The id of a local model named by id or alias; a 404 for anything else, a 400 for an upstream one. */
function localModel(services: Services, name: string): string {
  const model = services.catalog.find(name);
  if (!model) throw modelNotFound(name);
  if (model.provider !== "llama" || !services.pool.spec(model.id)) {
    throw invalidRequest(
      `Model ${model.id} is served by an upstream server; only local models load and unload here.`,
      "model",
    );
  }
  return model.id;
}

/** `since`/`until` of experiment results: both optional (since: the experiment's start; until: now). */
function resultsRange(query: Record<string, string>): { since: Date | undefined; until: Date | undefined } {
  const parsed = ResultsQuery.safeParse(query, { reportInput: true });
  if (!parsed.success) throw fromZodError(parsed.error);
  const at = (param: "since" | "until") => {
    const value = parsed.data[param];
    if (value === undefined) return undefined;
    const instant = parseInstant(value);
    if (!instant) {
      throw invalidRequest(
        `${param} must be an ISO 8601 time (2025-06-12T08:00:00Z) or unix seconds, got ${JSON.stringify(value)}.`,
        param,
      );
    }
    return instant;
  };
  return { since: at("since"), until: at("until") };
}
