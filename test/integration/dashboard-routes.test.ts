// What the dashboard reads and how it is served, through the real server: /dashboard's files
// (open, holding no data, and saying whether a key is needed), the admin routes it polls
// (time series, the model pool, every tenant's fine-tuning jobs) behind the admin key, and
// that polling them leaves no usage record.
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboardRoutes } from "../../routes/dashboard.ts";
import type { TimeSeries } from "../../src/telemetry/timeseries.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

const ADMIN = "routes-admin-key";
const ALICE = "key-alice";
const BOB = "key-bob";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: tinyConfig("finetune:\n  context: 64"),
    apiKeys: [ALICE, BOB],
    adminApiKey: ADMIN,
  });
});
afterAll(async () => {
  await s?.close();
});

const admin = (path: string, key = ADMIN) =>
  fetch(`${s.url}/admin${path}`, { headers: { authorization: `Bearer ${key}` } });
const client = (key: string) => new OpenAI({ baseURL: s.baseURL, apiKey: key, maxRetries: 0 });
const usageTotal = async () =>
  ((await (await admin("/usage")).json()) as { data: { requests: number }[] }).data.reduce((n, g) => n + g.requests, 0);

describe("/dashboard", () => {
  it("serves its files to anyone, with no data in them, saying the admin key is needed", async () => {
    const page = await fetch(`${s.url}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    const html = await page.text();
    expect(html).toContain('<meta name="roundhouse-admin-key" content="required" />');
    expect(html).not.toContain("roundhouse-tiny");
    const script = await fetch(`${s.url}/dashboard/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect((await script.text()).length).toBeGreaterThan(10_000);
    expect((await fetch(`${s.url}/dashboard/app.css`)).status).toBe(200);
    for (const path of ["/dashboard/index.html", "/dashboard/secrets.js", "/dashboard/..%2Fpackage.json"]) {
      expect((await fetch(`${s.url}${path}`)).status, path).toBe(404);
    }
  });

  it("says where the files should come from when they were not built", async () => {
    const res = await dashboardRoutes(s.services, "/nonexistent/dashboard").request("/");
    expect(res.status).toBe(503);
    expect(await res.text()).toContain("npm run build:dashboard");
  });

  it("keeps the data routes behind the admin key", async () => {
    for (const path of ["/timeseries", "/models", "/fine_tuning/jobs"]) {
      expect((await fetch(`${s.url}/admin${path}`)).status, path).toBe(401);
      expect((await admin(path, ALICE)).status, path).toBe(403);
    }
  });
});

describe("/admin/timeseries", () => {
  it("buckets the requests per model and in total, over the range asked for", async () => {
    const since = Math.floor(Date.now() / 1000) - 60;
    for (let i = 0; i < 3; i++) {
      await client(ALICE).chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: `Hi ${i}` }],
        max_tokens: 3,
        temperature: 0,
      });
    }
    // The record is written once the response is out: poll until all three are in.
    let series: TimeSeries & { since: string; until: string };
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    for (;;) {
      const res = await admin(`/timeseries?since=${since}&step=10`);
      expect(res.status).toBe(200);
      series = (await res.json()) as typeof series;
      if (sum(series.groups[0]?.requests ?? []) >= 3) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(series.step_seconds).toBe(10);
    expect(series.group_by).toBe("model");
    expect(series.timestamps.every((t) => t % 10 === 0)).toBe(true);
    expect(series.timestamps.length).toBeGreaterThanOrEqual(6);
    expect(series.groups.map((g) => g.group)).toEqual(["total", "roundhouse-tiny"]);
    const tiny = series.groups[1];
    expect(sum(tiny?.requests ?? [])).toBe(3);
    expect(tiny?.latency_ms.p95.some((v) => v !== null && v > 0)).toBe(true);
    expect(tiny?.error_rate.filter((v) => v !== null).every((v) => v === 0)).toBe(true);
    for (const g of series.groups) expect(g.requests).toHaveLength(series.timestamps.length);
  });

  it("refuses a bad query, naming the parameter", async () => {
    for (const [query, param] of [
      ["step=0", "step"],
      ["step=1&since=0", "step"],
      ["group_by=key", "group_by"],
      ["since=yesterday", "since"],
      ["bucket=5", "bucket"],
    ] as const) {
      const res = await admin(`/timeseries?${query}`);
      expect(res.status, query).toBe(400);
      expect(((await res.json()) as { error: { param: string } }).error.param, query).toBe(param);
    }
  });
});

describe("/admin/models", () => {
  it("lists the served models with their memory, sequences and queue", async () => {
    const res = await admin("/models");
    expect(res.status).toBe(200);
    const { data } = (await res.json()) as { data: Record<string, unknown>[] };
    expect(data).toEqual([
      expect.objectContaining({
        id: "roundhouse-tiny",
        provider: "llama",
        aliases: ["tiny"],
        loaded: true,
        memory_bytes: expect.any(Number),
        parallel: 4,
        busy_sequences: 0,
        queue_depth: 0,
      }),
    ]);
    expect(data[0]?.memory_bytes).toBeGreaterThan(0);
  });
});

describe("/admin/fine_tuning/jobs", () => {
  it("shows the admin every tenant's jobs, their events and checkpoints", async () => {
    const text = JSON.stringify({
      messages: [
        { role: "user", content: "q" },
        { role: "assistant", content: "a" },
      ],
    });
    const jobs: string[] = [];
    for (const key of [ALICE, BOB]) {
      const c = client(key);
      const file = await c.files.create({ file: await toFile(Buffer.from(text), "t.jsonl"), purpose: "fine-tune" });
      const job = await c.fineTuning.jobs.create({ model: "tiny", training_file: file.id });
      jobs.push(job.id);
      await c.fineTuning.jobs.cancel(job.id);
    }
    // Each tenant sees its own; the admin sees both.
    expect((await client(ALICE).fineTuning.jobs.list()).data.map((j) => j.id)).toEqual([jobs[0]]);
    const res = await admin("/fine_tuning/jobs");
    expect(res.status).toBe(200);
    const listed = (await res.json()) as { data: { id: string; tenant: string | null }[]; has_more: boolean };
    expect(listed.data.map((j) => j.id)).toEqual([...jobs].reverse());
    const tenants = listed.data.map((j) => j.tenant);
    expect(tenants[0]).toMatch(/^key_[0-9a-f]{12}$/);
    expect(tenants[1]).toMatch(/^key_[0-9a-f]{12}$/);
    expect(tenants[0]).not.toBe(tenants[1]);
    for (const id of jobs) {
      const events = (await (await admin(`/fine_tuning/jobs/${id}/events?limit=100`)).json()) as {
        data: { message: string }[];
      };
      expect(events.data.map((e) => e.message)).toContain(`Created fine-tuning job: ${id}`);
      expect((await admin(`/fine_tuning/jobs/${id}/checkpoints`)).status).toBe(200);
    }
    expect((await admin("/fine_tuning/jobs/ftjob-AAAAAAAAAAAAAAAAAAAAAAAA/events")).status).toBe(404);
  });
});

describe("the dashboard's own requests", () => {
  it("leave no usage record", async () => {
    const before = await usageTotal();
    for (let i = 0; i < 5; i++) {
      for (const path of ["/timeseries", "/models", "/experiments", "/fine_tuning/jobs", "/usage"]) {
        expect((await admin(path)).status).toBe(200);
      }
      expect((await fetch(`${s.url}/dashboard`)).status).toBe(200);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(await usageTotal()).toBe(before);
  });
});
