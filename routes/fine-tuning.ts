// /v1/fine_tuning/jobs: create, list, retrieve, cancel, events, checkpoints (OpenAI's shapes).
import { Hono } from "hono";
import { fromZodError } from "../src/openai/errors.ts";
import {
  CreateFineTuningJobRequest,
  ListCheckpointsQuery,
  ListEventsQuery,
  ListJobsQuery,
} from "../src/openai/fine-tuning.ts";
import type { Services } from "../src/services.ts";
import type { AppEnv } from "./env.ts";
import { readJson } from "./json.ts";

export function fineTuningRoutes(services: Services): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const ft = services.fineTuning;

  app.post("/jobs", async (c) => {
    const parsed = CreateFineTuningJobRequest.safeParse(await readJson(c), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    return c.json(await ft.createJob(parsed.data, c.get("caller")));
  });

  app.get("/jobs", async (c) => {
    const query = c.req.query();
    const parsed = ListJobsQuery.safeParse(query, { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    // metadata[key]=value filters (every pair must match); metadata=null lists jobs without any.
    const pairs = Object.entries(query).flatMap(([k, v]): [string, string][] => {
      const m = /^metadata\[(.+)\]$/.exec(k);
      return m?.[1] ? [[m[1], v]] : [];
    });
    const metadata = query.metadata === "null" ? null : pairs.length > 0 ? Object.fromEntries(pairs) : undefined;
    const page = await ft.listJobs({ ...parsed.data, metadata }, c.get("caller").viewer);
    return c.json({ object: "list", ...page });
  });

  app.get("/jobs/:id", async (c) => c.json(await ft.getJob(c.req.param("id"), c.get("caller").viewer)));

  app.post("/jobs/:id/cancel", async (c) => c.json(await ft.cancel(c.req.param("id"), c.get("caller").viewer)));

  app.get("/jobs/:id/events", async (c) => {
    const parsed = ListEventsQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    return c.json({ object: "list", ...(await ft.events(c.req.param("id"), parsed.data, c.get("caller").viewer)) });
  });

  app.get("/jobs/:id/checkpoints", async (c) => {
    const parsed = ListCheckpointsQuery.safeParse(c.req.query(), { reportInput: true });
    if (!parsed.success) throw fromZodError(parsed.error);
    const page = await ft.checkpoints(c.req.param("id"), parsed.data, c.get("caller").viewer);
    return c.json({
      object: "list",
      ...page,
      first_id: page.data[0]?.id ?? null,
      last_id: page.data.at(-1)?.id ?? null,
    });
  });

  return app;
}
