// Redis stopped (SIGKILL) and restarted, empty, under traffic, with two replicas sharing it for
// the response cache, experiment state, rate-limit counters and the usage log: every request
// keeps succeeding (the cache turns into misses, the rest carries on from memory), and once
// Redis is back the replicas share state again by themselves. Times are reported, not asserted.
import { createClient } from "@keyv/redis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addressId } from "../../src/security/api-keys.ts";
import { keyId } from "../../src/telemetry/record.ts";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { envelopeOf, rawRequest } from "../helpers/http.ts";
import { type PrivateRedis, privateRedis } from "../helpers/redis.ts";
import { eventually, report, STRESS } from "../helpers/report.ts";
import { startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

const PER_PHASE = STRESS ? 400 : 60;
const TRAFFIC = "sk-traffic";
const SHARED = "sk-shared-limit";
const PROBE = "sk-probe";

let redis: PrivateRedis;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  redis = await privateRedis();
  await redis.start();
  const config = `${tinyConfig("max_tokens: 4")}
cache: {store: redis, url: "${redis.url}", timeout: 100ms}
experiments:
  - name: ab
    variants:
      - {name: a, model: tiny, weight: 1}
      - {name: b, model: roundhouse-tiny, weight: 1}
experiment_state: {store: redis, url: "${redis.url}", poll: 200ms}
rate_limits:
  default: {requests_per_minute: 1000000}
  keys:
    ${keyId(`Bearer ${SHARED}`)}: {requests_per_minute: 6}
  store: redis
  url: "${redis.url}"
`;
  a = await startServer({ config, logger: pino({ level: "silent" }) });
  b = await startServer({ config, logger: pino({ level: "silent" }) });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await redis?.stop();
});

const chat = (server: TestServer, content: string, key = TRAFFIC, model = "ab") =>
  rawRequest(server.url, {
    method: "POST",
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}`, "x-user-id": content },
    body: JSON.stringify({ model, messages: [{ role: "user", content }], max_tokens: 4, temperature: 0 }),
    timeoutMs: 30_000,
  });

interface Phase {
  sent: number;
  failed: string[];
  /** Experiment results read the shared usage log: without Redis they are a 503 saying so. */
  resultsUnavailable: number;
  ms: number[];
  cache: Record<string, number>;
}

/** `count` requests from 4 concurrent clients over both replicas: chat (a few prompts, so the cache hits), models, experiment results. */
async function traffic(count: number): Promise<Phase> {
  const phase: Phase = { sent: 0, failed: [], resultsUnavailable: 0, ms: [], cache: {} };
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < count) {
        const i = next++;
        const server = i % 2 === 0 ? a : b;
        const started = performance.now();
        const res =
          i % 5 === 4
            ? await rawRequest(server.url, { method: "GET", path: "/admin/experiments/ab" })
            : i % 5 === 3
              ? await rawRequest(server.url, {
                  method: "GET",
                  path: "/v1/models",
                  headers: { authorization: `Bearer ${TRAFFIC}` },
                })
              : await chat(server, `prompt ${i % 7}`);
        phase.ms.push(performance.now() - started);
        phase.sent++;
        const cache = res.headers["x-roundhouse-cache"];
        if (typeof cache === "string") phase.cache[cache] = (phase.cache[cache] ?? 0) + 1;
        if (i % 5 === 4 && res.status === 503 && envelopeOf(res.body).error.code === "usage_log_unavailable") {
          phase.resultsUnavailable++;
        } else if (res.status !== 200) {
          phase.failed.push(`${res.status} ${res.body.slice(0, 200)}`);
        }
      }
    }),
  );
  return phase;
}

const summary = (p: Phase) => {
  const sorted = [...p.ms].sort((x, y) => x - y);
  const at = (q: number) => Math.round(sorted[Math.floor(q * (sorted.length - 1))] ?? 0);
  const unavailable =
    p.resultsUnavailable > 0 ? ` (experiment results: ${p.resultsUnavailable}× 503 usage_log_unavailable)` : "";
  return `${p.sent} sent, ${p.failed.length} failed${unavailable}; latency p50 ${at(0.5)} ms, p99 ${at(0.99)} ms; cache ${JSON.stringify(p.cache)}`;
};

describe("Redis outage", () => {
  it("requests keep succeeding while Redis is down, and shared state resyncs once it is back", async () => {
    // Serving never needs Redis: chat, models and the limiter carry on. Reading experiment
    // results needs the shared usage log, so that one read says it is unavailable (503).
    const up = await traffic(PER_PHASE);
    expect(up.failed).toEqual([]);
    expect(up.cache.hit ?? 0).toBeGreaterThan(0);

    await redis.stop();
    const down = await traffic(PER_PHASE);
    expect(down.failed).toEqual([]);
    // Nothing could be read from the cache: misses (or bypassed), never a hit, never an error answer.
    expect(down.cache.hit ?? 0).toBe(0);

    await redis.start();
    const restarted = performance.now();
    const back = await traffic(PER_PHASE);
    expect(back.failed).toEqual([]);

    // Cache: an answer one replica stores is a hit on the other.
    let n = 0;
    const cacheMs = await eventually(async () => {
      const prompt = `resync ${n++}`;
      await chat(a, prompt, TRAFFIC, "tiny");
      return (await chat(b, prompt, TRAFFIC, "tiny")).headers["x-roundhouse-cache"] === "hit";
    }, 20_000);
    expect(cacheMs, "the cache is shared again").toBeDefined();
    const cacheSharedAfter = performance.now() - restarted;

    // Experiment state: weights set on one replica reach the other.
    const set = await rawRequest(a.url, {
      method: "PUT",
      path: "/admin/experiments/ab/weights",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ weights: { a: 1, b: 0 } }),
    });
    expect(set.status).toBe(200);
    const weightsMs = await eventually(async () => {
      const res = await rawRequest(b.url, { method: "GET", path: "/admin/experiments/ab" });
      if (res.status !== 200) return false;
      const variants = (JSON.parse(res.body) as { variants: { name: string; effective_weight: number }[] }).variants;
      return variants.find((v) => v.name === "b")?.effective_weight === 0;
    }, 20_000);
    expect(weightsMs, "experiment weights agree again").toBeDefined();
    const weightsSharedAfter = performance.now() - restarted;

    // Rate limits: both replicas count in Redis again (a probe key's counter appears there for
    // each), then a key allowed 6 a minute gets 6 over the two of them, and the 7th is refused.
    const client = createClient({ url: redis.url });
    await client.connect();
    // Without API_KEYS a bearer string that rate_limits.keys does not list is counted per client address.
    const probeKeys = `roundhouse:rate:requests:${addressId("127.0.0.1")}:*`;
    const counting = async (server: TestServer) => {
      for (const k of await client.keys(probeKeys)) await client.del(k);
      await rawRequest(server.url, {
        method: "GET",
        path: "/v1/models",
        headers: { authorization: `Bearer ${PROBE}` },
      });
      return (await client.keys(probeKeys)).length > 0;
    };
    const ratesMs = await eventually(async () => (await counting(a)) && (await counting(b)), 20_000);
    expect(ratesMs, "rate counts are shared again").toBeDefined();
    const ratesSharedAfter = performance.now() - restarted;
    await client.close();
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await rawRequest((i % 2 === 0 ? a : b).url, {
        method: "GET",
        path: "/v1/models",
        headers: { authorization: `Bearer ${SHARED}` },
      });
      statuses.push(res.status);
      if (res.status === 429) expect(envelopeOf(res.body).error.code).toBe("rate_limit_exceeded");
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 429]);

    report("redis outage", {
      "redis up": summary(up),
      "redis killed": summary(down),
      "redis restarted (empty)": summary(back),
      "cache shared again": `${Math.round(cacheSharedAfter)} ms after the restart`,
      "experiment weights shared again": `${Math.round(weightsSharedAfter)} ms after the restart`,
      "rate counts shared again": `${Math.round(ratesSharedAfter)} ms after the restart`,
    });
  }, 300_000);
});

describe("an upstream that hangs", () => {
  let up: FakeUpstream;
  let s: TestServer;
  const TIMEOUT_MS = 300;
  beforeAll(async () => {
    up = await startFakeUpstream();
    s = await startServer({
      config: `
models:
  - id: roundhouse-tiny
    provider: llama
    path: ${TINY_MODEL}
    context_size: 512
    parallel: 2
    threads: 1
    preload: true
  - id: remote
    provider: openai
    base_url: ${up.baseUrl}
    timeout: ${TIMEOUT_MS}ms
    response_timeout: ${TIMEOUT_MS}ms
    retries: 0
experiments:
  - name: assistant
    variants:
      - { name: main, model: [remote, roundhouse-tiny], weight: 1 }
`,
      logger: pino({ level: "silent" }),
    });
  });
  afterAll(async () => {
    await s?.close();
    await up?.close();
  });

  /** `count` requests, every third streamed: each must succeed; returns who served them and how fast. */
  async function phase(count: number): Promise<{ servedBy: Record<string, number>; ms: number[] }> {
    const servedBy: Record<string, number> = {};
    const ms: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      const res = await rawRequest(s.url, {
        method: "POST",
        path: "/v1/chat/completions",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "assistant",
          messages: [{ role: "user", content: `Hi ${i}` }],
          max_tokens: 4,
          stream: i % 3 === 0,
        }),
        timeoutMs: 30_000,
      });
      ms.push(performance.now() - started);
      expect(res.status, res.body.slice(0, 300)).toBe(200);
      if (i % 3 === 0) expect(res.body.trimEnd().endsWith("data: [DONE]")).toBe(true);
      const model = String(res.headers["x-roundhouse-model"]);
      servedBy[model] = (servedBy[model] ?? 0) + 1;
    }
    return { servedBy, ms };
  }
  const describePhase = (p: { servedBy: Record<string, number>; ms: number[] }) =>
    `served by ${JSON.stringify(p.servedBy)}; latency p50 ${Math.round([...p.ms].sort((x, y) => x - y)[Math.floor(p.ms.length / 2)] ?? 0)} ms, max ${Math.round(Math.max(...p.ms))} ms`;

  it("is cut off by its timeout and the request falls back; traffic returns to it once it answers", async () => {
    const n = STRESS ? 60 : 6;
    const healthy = await phase(n);
    expect(healthy.servedBy).toEqual({ remote: n });

    up.script(...Array.from({ length: n }, () => ({ kind: "hang" as const })));
    const hanging = await phase(n);
    expect(hanging.servedBy).toEqual({ "roundhouse-tiny": n });
    // Each waited for the timeout, not for the upstream: bounded well below the client's deadline.
    expect(Math.max(...hanging.ms)).toBeLessThan(30_000);

    const recovered = await phase(n);
    expect(recovered.servedBy).toEqual({ remote: n });

    report("upstream that hangs", {
      timeout: `${TIMEOUT_MS} ms (also for JSON answers), no retries, fallback to the local model`,
      "upstream answering": describePhase(healthy),
      "upstream hanging": describePhase(hanging),
      "upstream answering again": describePhase(recovered),
      failures: 0,
    });
  }, 120_000);
});
