// Experiments through the real server: variant headers, forced variants, fallbacks, a canary
// on a model that cannot load rolled back after min_requests, admin weights and restore,
// results, feedback, and two replicas agreeing on a rollback through a shared Redis.
import OpenAI from "openai";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ExperimentResults } from "../../src/traffic/results.ts";
import { brokenModelFile } from "../helpers/broken-model.ts";
import { type PrivateRedis, privateRedis } from "../helpers/redis.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";
import { usersOn } from "../helpers/sticky.ts";

const ADMIN = "admin-secret";
const BROKEN_GGUF = brokenModelFile();

// `broken` is configured but its file is cut short: every load is a ModelLoadError.
const BROKEN = `  - id: broken
    provider: llama
    path: ${BROKEN_GGUF}
    context_size: 512
    threads: 1`;

const EXPERIMENTS = `experiments:
  - name: chat
    variants:
      - {name: control, model: tiny, weight: 50}
      - name: canary
        model: broken
        weight: 50
        canary: true
        fallback: false
        rollback:
          - {metric: error_rate, max: 0.2, min_requests: 5, window: 5m}
  - name: resilient
    variants:
      - {name: control, model: tiny, weight: 0}
      - {name: own, model: [broken, tiny], weight: 1, canary: true}
      - {name: borrowed, model: broken, weight: 0, canary: true}`;

interface Reply {
  status: number;
  headers: Headers;
  body: { model?: string; error?: { code: string | null; param: string | null; type: string } };
}

async function chat(s: TestServer, model: string, headers: Record<string, string> = {}, extra = {}): Promise<Reply> {
  const res = await fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({
      model,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 2,
      temperature: 0,
      ...extra,
    }),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: res.headers.get("content-type")?.includes("json") ? JSON.parse(text) : {},
  };
}

const served = (r: Reply) => ({
  experiment: r.headers.get("x-roundhouse-experiment"),
  variant: r.headers.get("x-roundhouse-variant"),
  model: r.headers.get("x-roundhouse-model"),
});

async function admin<T>(
  s: TestServer,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: T }> {
  const res = await fetch(`${s.url}/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as T };
}

const results = async (s: TestServer, name: string) =>
  (await admin<ExperimentResults>(s, "GET", `/experiments/${name}`)).json;
const variantOf = (r: ExperimentResults, name: string) => r.variants.find((v) => v.name === name);

/** Polls until `check` passes or `ms` have gone by. */
async function eventually(check: () => Promise<boolean>, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return check();
}

async function rollbacksMetric(s: TestServer): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text
    .split("\n")
    .find((l) => l.startsWith('roundhouse_rollbacks_total{experiment="chat",variant="canary"}'));
  return Number(line?.split(" ")[1] ?? 0);
}

describe("experiments on one server", () => {
  let s: TestServer;
  const logs: string[] = [];
  beforeAll(async () => {
    const logger = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
    s = await startServer({ config: `${tinyConfig()}\n${BROKEN}\n${EXPERIMENTS}`, adminApiKey: ADMIN, logger });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("says what served each response: JSON, SSE and cache hits", async () => {
    const json = await chat(s, "chat", { "x-roundhouse-variant": "control" });
    expect(json.status).toBe(200);
    expect(served(json)).toEqual({ experiment: "chat", variant: "control", model: "roundhouse-tiny" });
    expect(json.body.model).toBe("roundhouse-tiny");
    expect(json.headers.get("x-roundhouse-cache")).toBe("miss");

    const hit = await chat(s, "chat", { "x-roundhouse-variant": "control" });
    expect(hit.headers.get("x-roundhouse-cache")).toBe("hit");
    expect(served(hit)).toEqual(served(json));

    const sse = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-roundhouse-variant": "control" },
      body: JSON.stringify({ model: "chat", messages: [{ role: "user", content: "Yo" }], max_tokens: 2, stream: true }),
    });
    await sse.text();
    expect(sse.headers.get("content-type")).toContain("text/event-stream");
    expect(sse.headers.get("x-roundhouse-variant")).toBe("control");
    expect(sse.headers.get("x-roundhouse-model")).toBe("roundhouse-tiny");
  });

  it("keeps plain model names working, and refuses unknown or misplaced forced variants with OpenAI's envelope", async () => {
    const plain = await chat(s, "tiny");
    expect(plain.status).toBe(200);
    expect(served(plain)).toEqual({ experiment: null, variant: null, model: "roundhouse-tiny" });

    const client = new OpenAI({ baseURL: s.baseURL, apiKey: "unused", maxRetries: 0 });
    const unknown = await client.chat.completions
      .create(
        { model: "chat", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 },
        { headers: { "x-roundhouse-variant": "nope" } },
      )
      .catch((err: unknown) => err);
    expect(unknown).toBeInstanceOf(OpenAI.BadRequestError);
    expect(unknown).toMatchObject({ status: 400, code: "unknown_variant", param: "x-roundhouse-variant" });

    const misplaced = await chat(s, "tiny", { "x-roundhouse-variant": "control" });
    expect(misplaced.status).toBe(400);
    expect(misplaced.body.error?.code).toBe("unknown_variant");
  });

  it("falls back to the next model when one cannot load, and counts it", async () => {
    // `own` has all the weight: real traffic, not forced (forced requests are reported apart).
    const own = await chat(s, "resilient", {}, { temperature: 0.5 });
    expect(own.status).toBe(200);
    expect(served(own)).toEqual({ experiment: "resilient", variant: "own", model: "roundhouse-tiny" });
    // `borrowed` has only the broken model: control's model serves it, and that counts against it.
    await admin(s, "PUT", "/experiments/resilient/weights", { weights: { own: 0, borrowed: 1 } });
    const borrowed = await chat(s, "resilient", {}, { temperature: 0.5 });
    await admin(s, "PUT", "/experiments/resilient/weights", { weights: { own: 1, borrowed: 0 } });
    expect(served(borrowed)).toEqual({ experiment: "resilient", variant: "borrowed", model: "roundhouse-tiny" });
    // A forced request is served and counted as forced only.
    const forced = await chat(s, "resilient", { "x-roundhouse-variant": "borrowed" }, { temperature: 0.5 });
    expect(served(forced)).toMatchObject({ variant: "borrowed" });

    const r = await results(s, "resilient");
    expect(variantOf(r, "own")).toMatchObject({ requests: 1, forced: 0, fallbacks: 1, errors: 0 });
    expect(variantOf(r, "borrowed")).toMatchObject({ requests: 1, forced: 1, fallbacks: 1, errors: 1, error_rate: 1 });
    const fellBack = logs.map((l) => JSON.parse(l)).filter((l) => l.msg === "falling back to the next model");
    expect(fellBack[0]).toMatchObject({
      experiment: "resilient",
      variant: "own",
      from: "broken",
      to: "roundhouse-tiny",
    });
  });

  it("rolls a failing canary back after min_requests, then sends everyone to control", async () => {
    const canaryKeys: string[] = [];
    let failures = 0;
    for (let i = 0; canaryKeys.length < 5 && i < 200; i++) {
      const key = `user-${i}`;
      const r = await chat(s, "chat", { "x-user-id": key });
      if (served(r).variant === "canary") {
        canaryKeys.push(key);
        expect(r.status).toBe(503);
        expect(r.body.error?.code).toBe("model_unavailable");
        failures++;
      } else expect(r.status).toBe(200);
    }
    expect(failures).toBe(5);
    expect(await eventually(async () => variantOf(await results(s, "chat"), "canary")?.state === "rolled_back")).toBe(
      true,
    );

    for (const key of canaryKeys) {
      const r = await chat(s, "chat", { "x-user-id": key });
      expect(r.status).toBe(200);
      expect(served(r)).toMatchObject({ variant: "control", model: "roundhouse-tiny" });
    }
    const r = await results(s, "chat");
    expect(variantOf(r, "canary")).toMatchObject({
      configured_weight: 50,
      effective_weight: 0,
      state: "rolled_back",
      requests: 5,
      errors: 5,
      error_rate: 1,
    });
    expect(r.events).toEqual([
      expect.objectContaining({
        type: "rollback",
        experiment: "chat",
        variant: "canary",
        rule: { metric: "error_rate", max: 0.2, min_requests: 5, window_ms: 300_000 },
        observed: 1,
        threshold: 0.2,
        requests: { variant: 5, control: null },
      }),
    ]);
    expect(variantOf(r, "canary")?.vs_control?.error_rate?.verdict).toBe("worse");
    expect(await rollbacksMetric(s)).toBe(1);
    expect(logs.some((l) => l.includes("canary rolled back: error_rate 1 > 0.2"))).toBe(true);
  });

  it("reports the same error rate in /admin/usage by variant as in the experiment's results", async () => {
    // A client's own mistake after routing (a completion longer than the context) is neither
    // variant's failure: both views leave it out of the error rate.
    for (let i = 0; i < 4; i++) {
      const r = await chat(s, "chat", { "x-user-id": `user-${i}` }, { max_tokens: 100_000 });
      expect(r.status).toBe(400);
    }
    const usage = await admin<{ data: { group: string; error_rate: number; errors: number; client_errors: number }[] }>(
      s,
      "GET",
      "/usage?group_by=variant",
    );
    const experiment = await results(s, "chat");
    for (const name of ["control", "canary"]) {
      const group = usage.json.data.find((g) => g.group === `chat/${name}`);
      expect(group?.error_rate).toBe(variantOf(experiment, name)?.error_rate);
      expect(group?.errors).toBe(variantOf(experiment, name)?.errors);
    }
    expect(usage.json.data.reduce((n, g) => n + g.client_errors, 0)).toBeGreaterThanOrEqual(4);
  });

  it("restores a variant and changes weights at run time, behind the admin key", async () => {
    expect((await fetch(`${s.url}/admin/experiments`)).status).toBe(401);
    const restored = await admin<{ data: { name: string; effective_weight: number; state: string }[] }>(
      s,
      "POST",
      "/experiments/chat/variants/canary/restore",
    );
    expect(restored.status).toBe(200);
    expect(restored.json.data).toContainEqual({
      name: "canary",
      configured_weight: 50,
      effective_weight: 50,
      state: "active",
    });

    const weights = await admin<{ data: { name: string; effective_weight: number }[] }>(
      s,
      "PUT",
      "/experiments/chat/weights",
      {
        weights: { canary: 0 },
      },
    );
    expect(weights.json.data.map((v) => v.effective_weight)).toEqual([50, 0]);
    for (let i = 0; i < 10; i++)
      expect(served(await chat(s, "chat", { "x-user-id": `w-${i}` })).variant).toBe("control");

    expect((await admin(s, "POST", "/experiments/chat/weights", { weights: { control: 0 } })).status).toBe(400);
    expect((await admin(s, "POST", "/experiments/chat/weights", { weights: { ghost: 1 } })).status).toBe(404);
    expect((await admin(s, "POST", "/experiments/nope/variants/canary/restore")).status).toBe(404);

    const { json } = await admin<{ object: string; data: ExperimentResults[] }>(s, "GET", "/experiments");
    expect(json.data.map((e) => e.name)).toEqual(["chat", "resilient"]);
    expect(json.data[0]?.events.map((e) => e.type)).toEqual(["rollback", "restore", "weights"]);
  });

  it("attaches feedback to the variant that served a request", async () => {
    const r = await chat(s, "chat", { "x-roundhouse-variant": "control" }, { temperature: 0.7 });
    const requestId = r.headers.get("x-request-id") as string;
    const post = (body: unknown) =>
      fetch(`${s.baseURL}/feedback`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const ok = await post({ request_id: requestId, score: 0.5, comment: "fine" });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({
      object: "feedback",
      experiment: "chat",
      variant: "control",
      model: "roundhouse-tiny",
      score: 0.5,
    });
    await post({ request_id: requestId, score: -1 });
    expect(variantOf(await results(s, "chat"), "control")?.feedback).toEqual({ count: 2, mean: -0.25 });

    const unknown = await post({ request_id: "never-seen", score: 1 });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { param: "request_id" } });
    expect((await post({ request_id: requestId, score: 2 })).status).toBe(400);
  });
});

describe("experiments on two replicas sharing Redis", () => {
  let redis: PrivateRedis;
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    redis = await privateRedis();
    await redis.start();
    const config = `${tinyConfig()}\n${BROKEN}\n${EXPERIMENTS.replace("min_requests: 5", "min_requests: 3")}
experiment_state: {store: redis, url: "${redis.url}", poll: 200ms}`;
    a = await startServer({ config, adminApiKey: ADMIN });
    b = await startServer({ config, adminApiKey: ADMIN });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it("agree on a rollback within a second, and on a restore", async () => {
    // Real traffic that the split sends to the canary: forced requests would not count toward its rollback.
    const canaryUsers = usersOn(
      "chat",
      [
        { name: "control", weight: 50 },
        { name: "canary", weight: 50 },
      ],
      "canary",
      3,
    );
    for (const user of canaryUsers) expect((await chat(a, "chat", { "x-user-id": user })).status).toBe(503);
    expect(await eventually(async () => variantOf(await results(a, "chat"), "canary")?.state === "rolled_back")).toBe(
      true,
    );
    const rolledBackAt = Date.now();
    expect(
      await eventually(async () => variantOf(await results(b, "chat"), "canary")?.state === "rolled_back", 1000),
    ).toBe(true);
    expect(Date.now() - rolledBackAt).toBeLessThan(1000);
    for (let i = 0; i < 10; i++)
      expect(served(await chat(b, "chat", { "x-user-id": `b-${i}` })).variant).toBe("control");
    // One event, counted once, by the replica that tripped it.
    expect((await results(b, "chat")).events.filter((e) => e.type === "rollback")).toHaveLength(1);
    expect([await rollbacksMetric(a), await rollbacksMetric(b)]).toEqual([1, 0]);

    await admin(b, "POST", "/experiments/chat/variants/canary/restore");
    expect(await eventually(async () => variantOf(await results(a, "chat"), "canary")?.state === "active", 1000)).toBe(
      true,
    );
  });

  it("finds feedback for a request another replica served", async () => {
    const r = await chat(a, "chat", { "x-roundhouse-variant": "control" }, { temperature: 0.7 });
    const res = await fetch(`${b.baseURL}/feedback`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ request_id: r.headers.get("x-request-id"), score: 1 }),
    });
    expect(res.status).toBe(200);
    expect(variantOf(await results(a, "chat"), "control")?.feedback).toEqual({ count: 1, mean: 1 });
  });
});
