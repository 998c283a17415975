// Telemetry end to end: what /metrics, /admin/usage, the usage log and the request log say
// about real requests matches what the client sent and got back.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import type { UsageGroup } from "../../src/telemetry/summary.ts";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { type ServerOptions, startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

const ADMIN = "admin-secret";
const USER = "user-key";
const PRICE = "reference_price: {model: gpt-4o-mini, input_per_1m: 0.15, output_per_1m: 0.6}";

/** The tiny model (priced) and `one`: a single sequence, no wait queue, so a second request is a 429. */
const CONFIG = [
  tinyConfig(PRICE),
  "  - id: one",
  "    provider: llama",
  `    path: ${TINY_MODEL}`,
  "    context_size: 256",
  "    parallel: 1",
  "    threads: 1",
  "    preload: true",
  "    queue: {max_waiting: 0, timeout_ms: 30000}",
].join("\n");

let s: TestServer | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

async function start(options: ServerOptions = {}): Promise<TestServer> {
  s = await startServer({ config: CONFIG, apiKeys: [USER], adminApiKey: ADMIN, ...options });
  return s;
}

function chat(
  server: TestServer,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
  signal?: AbortSignal,
) {
  return fetch(`${server.baseURL}/chat/completions`, {
    method: "POST",
    signal: signal ?? null,
    headers: { "content-type": "application/json", authorization: `Bearer ${USER}`, ...headers },
    body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Hello there!" }], ...body }),
  });
}

async function usage(server: TestServer, query = "", key = ADMIN): Promise<{ data: UsageGroup[] }> {
  const res = await fetch(`${server.url}/admin/usage${query}`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  return (await res.json()) as { data: UsageGroup[] };
}

async function records(server: TestServer): Promise<UsageRecord[]> {
  const out: UsageRecord[] = [];
  for await (const r of server.services.telemetry.usage.query(new Date(0), new Date(Date.now() + 60_000))) out.push(r);
  return out;
}

/** Records go out once a response is complete, which for a stream is just after its last byte. */
async function waitForRecords(server: TestServer, count: number): Promise<UsageRecord[]> {
  const deadline = Date.now() + 15_000;
  while (true) {
    const found = await records(server);
    if (found.length >= count || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The sum of the samples of `name` whose labels include `labels` (text exposition format). */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let total: number | undefined;
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total = (total ?? 0) + Number(match[3]);
  }
  return total;
}

async function scrape(server: TestServer): Promise<string> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toContain("text/plain");
  return res.text();
}

describe("counts and latencies", () => {
  it("match the responses' usage in /metrics, /admin/usage and the usage log", async () => {
    const server = await start();
    const client = new (await import("openai")).default({ baseURL: server.baseURL, apiKey: USER, maxRetries: 0 });
    let prompt = 0;
    let completion = 0;
    let slowest = 0;
    for (const maxTokens of [3, 5, 8]) {
      const began = performance.now();
      const reply = await client.chat.completions.create({
        model: "tiny",
        messages: [{ role: "user", content: `Count to ${maxTokens}.` }],
        max_tokens: maxTokens,
        temperature: 0,
      });
      slowest = Math.max(slowest, performance.now() - began);
      prompt += reply.usage?.prompt_tokens ?? 0;
      completion += reply.usage?.completion_tokens ?? 0;
    }
    const began = performance.now();
    const stream = await client.chat.completions.create({
      model: "roundhouse-tiny",
      messages: [{ role: "user", content: "Tell me a story." }],
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    for await (const chunk of stream) {
      prompt += chunk.usage?.prompt_tokens ?? 0;
      completion += chunk.usage?.completion_tokens ?? 0;
    }
    slowest = Math.max(slowest, performance.now() - began);

    const logged = await waitForRecords(server, 4);
    expect(logged).toHaveLength(4);
    expect(logged.reduce((n, r) => n + r.prompt_tokens, 0)).toBe(prompt);
    expect(logged.reduce((n, r) => n + r.completion_tokens, 0)).toBe(completion);
    const streamed = logged.find((r) => r.stream);
    expect(streamed).toMatchObject({ model: "roundhouse-tiny", served_model: "roundhouse-tiny", status: 200 });
    for (const r of logged) {
      expect(r).toMatchObject({ served_model: "roundhouse-tiny", provider: "llama", estimated: false, fallbacks: 0 });
      expect(r.client_disconnected).toBe(false);
      expect(r.error_type).toBeUndefined();
      expect(r.key_id).toMatch(/^key_[0-9a-f]{12}$/);
      expect(JSON.stringify(r)).not.toContain(USER);
      expect(r.ttft_ms).toBeGreaterThan(0);
      expect(r.ttft_ms).toBeLessThanOrEqual(r.latency_ms);
      expect(r.latency_ms).toBeLessThanOrEqual(slowest);
      expect(r.reference?.model).toBe("gpt-4o-mini");
      expect(r.reference?.cost_usd).toBeGreaterThan(0);
    }
    expect(logged.filter((r) => r.model === "tiny")).toHaveLength(3);

    const { data } = await usage(server);
    expect(data).toHaveLength(1);
    const [group] = data;
    expect(group).toMatchObject({
      group: "roundhouse-tiny",
      requests: 4,
      errors: 0,
      error_rate: 0,
      prompt_tokens: prompt,
      completion_tokens: completion,
    });
    const latencies = logged.map((r) => r.latency_ms).sort((a, b) => a - b);
    expect(group?.latency_ms).toEqual({ p50: latencies[1], p95: latencies[3], p99: latencies[3] });
    expect(group?.ttft_ms.p50).toBeGreaterThan(0);
    const cost = logged.reduce((n, r) => n + (r.reference?.cost_usd ?? 0), 0);
    expect(group?.cost_avoided_usd).toBeCloseTo(cost, 6);
    // Same order of magnitude as pricing the local counts directly: the ratio is a tokenizer ratio, not a guess.
    expect(cost / ((prompt * 0.15 + completion * 0.6) / 1e6)).toBeGreaterThan(0.2);
    expect(cost / ((prompt * 0.15 + completion * 0.6) / 1e6)).toBeLessThan(5);

    const text = await scrape(server);
    const tiny = { model: "roundhouse-tiny", variant: "none" };
    expect(metric(text, "roundhouse_requests_total", { ...tiny, status: "200" })).toBe(4);
    expect(metric(text, "roundhouse_tokens_total", { ...tiny, kind: "prompt" })).toBe(prompt);
    expect(metric(text, "roundhouse_tokens_total", { ...tiny, kind: "completion" })).toBe(completion);
    expect(metric(text, "roundhouse_request_duration_seconds_count", { ...tiny, stream: "false" })).toBe(3);
    expect(metric(text, "roundhouse_request_duration_seconds_count", { ...tiny, stream: "true" })).toBe(1);
    const seconds = metric(text, "roundhouse_request_duration_seconds_sum", tiny) ?? 0;
    expect(seconds * 1000).toBeCloseTo(
      logged.reduce((n, r) => n + r.latency_ms, 0),
      0,
    );
    expect(metric(text, "roundhouse_time_to_first_token_seconds_count", tiny)).toBe(4);
    expect(metric(text, "roundhouse_models_loaded")).toBe(2);
    expect(metric(text, "roundhouse_model_load_seconds_count", { model: "roundhouse-tiny" })).toBe(1);
    expect(metric(text, "roundhouse_queue_depth", { model: "one" })).toBe(0);
    expect(metric(text, "roundhouse_busy_sequences", { model: "roundhouse-tiny" })).toBe(0);
    expect(metric(text, "process_cpu_seconds_total")).toBeGreaterThan(0);
    expect(text).toContain("# TYPE roundhouse_fine_tune_jobs gauge");
    expect(text).toContain("# TYPE roundhouse_rollbacks_total counter");
    expect(text).toContain("# TYPE roundhouse_cache_requests_total counter");
    expect(text).toContain("# TYPE roundhouse_generation_tokens_per_second histogram");
  });
});

describe("errors", () => {
  it("are recorded with their status and type, under bounded labels", async () => {
    const server = await start();
    expect((await chat(server, { temperature: "hot" })).status).toBe(400);
    expect((await chat(server, { model: "no-such-model" })).status).toBe(404);
    expect((await chat(server, {}, { authorization: "Bearer wrong" })).status).toBe(401);
    const [a, b] = await Promise.all([
      chat(server, { model: "one", max_tokens: 30 }),
      chat(server, { model: "one", max_tokens: 30 }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 429]);

    const logged = await waitForRecords(server, 5);
    const byStatus = new Map(logged.map((r) => [r.status, r]));
    expect(byStatus.get(400)).toMatchObject({
      model: "tiny",
      served_model: "roundhouse-tiny",
      error_type: "invalid_request_error",
      error_code: "invalid_type",
    });
    expect(byStatus.get(404)).toMatchObject({ model: "no-such-model", error_code: "model_not_found" });
    expect(byStatus.get(404)?.served_model).toBeUndefined();
    expect(byStatus.get(401)).toMatchObject({ error_code: "invalid_api_key" });
    expect(byStatus.get(429)).toMatchObject({ served_model: "one", error_type: "requests" });
    expect(byStatus.get(200)?.error_type).toBeUndefined();

    const text = await scrape(server);
    expect(metric(text, "roundhouse_requests_total", { model: "roundhouse-tiny", status: "400" })).toBe(1);
    expect(metric(text, "roundhouse_requests_total", { model: "unknown", status: "404" })).toBe(1);
    expect(metric(text, "roundhouse_requests_total", { model: "unknown", status: "401" })).toBe(1);
    expect(metric(text, "roundhouse_requests_total", { model: "one", status: "429" })).toBe(1);
    expect(metric(text, "roundhouse_requests_total", { model: "one", status: "200" })).toBe(1);
    expect(text).not.toContain("no-such-model");
    // Only successes are timed.
    expect(metric(text, "roundhouse_request_duration_seconds_count")).toBe(1);

    const { data } = await usage(server);
    const groups = Object.fromEntries(data.map((g) => [g.group, g]));
    // A 429 is the server's failure; a 400, 401 or 404 the client's own (telemetry/record.ts outcomeOf).
    expect(groups.one).toMatchObject({ requests: 2, errors: 1, error_rate: 0.5, client_errors: 0 });
    expect(groups["roundhouse-tiny"]).toMatchObject({ requests: 1, errors: 0, error_rate: 0, client_errors: 1 });
    expect(groups["roundhouse-tiny"]?.latency_ms).toEqual({ p50: null, p95: null, p99: null });
    expect(groups.unknown).toMatchObject({ requests: 2, errors: 0, client_errors: 2 });
  });
});

describe("streams", () => {
  it("records a finished stream's usage, TTFT and decode speed", async () => {
    const server = await start();
    const res = await chat(server, { stream: true, stream_options: { include_usage: true }, max_tokens: 16 });
    const body = await res.text();
    const usageLine = body
      .split("\n")
      .filter((l) => l.startsWith("data: {"))
      .map((l) => JSON.parse(l.slice(6)) as { usage?: { prompt_tokens: number; completion_tokens: number } | null })
      .find((c) => c.usage);
    const [record] = await waitForRecords(server, 1);
    expect(record).toMatchObject({
      stream: true,
      status: 200,
      client_disconnected: false,
      prompt_tokens: usageLine?.usage?.prompt_tokens,
      completion_tokens: usageLine?.usage?.completion_tokens,
      request_id: res.headers.get("x-request-id"),
    });
    expect(record?.ttft_ms).toBeLessThan(record?.latency_ms ?? 0);
    if ((record?.completion_tokens ?? 0) >= 2) expect(record?.tokens_per_second).toBeGreaterThan(0);
  });

  it("records a stream the client abandoned as 499, client_disconnected", async () => {
    const server = await start();
    const abort = new AbortController();
    const res = await chat(server, { stream: true, max_tokens: 400 }, {}, abort.signal);
    const reader = res.body?.getReader();
    const first = await reader?.read();
    expect(new TextDecoder().decode(first?.value)).toContain("data: ");
    abort.abort();

    const [record] = await waitForRecords(server, 1);
    expect(record).toMatchObject({ stream: true, status: 499, client_disconnected: true });
    expect(record?.error_type).toBeUndefined();
    expect(record?.ttft_ms).toBeGreaterThan(0);
    expect(record?.prompt_tokens).toBeGreaterThan(0);
    // Whatever the provider's usage() says once it stopped. (The llama engine does not yet count
    // the tokens of a generation cut short, so today this is 0.)
    expect(record?.completion_tokens).toBeLessThan(400);

    const text = await scrape(server);
    expect(metric(text, "roundhouse_requests_total", { model: "roundhouse-tiny", status: "499" })).toBe(1);
    const { data } = await usage(server);
    expect(data[0]).toMatchObject({ requests: 1, errors: 0, client_disconnects: 1 });
    // The sequence is free again.
    expect(metric(text, "roundhouse_busy_sequences", { model: "roundhouse-tiny" })).toBe(0);
  });
});

describe("the usage log", () => {
  it("survives a restart on the same DATA_DIR", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "roundhouse-usage-"));
    try {
      const first = await start({ dataDir });
      let completion = 0;
      for (let i = 0; i < 2; i++) {
        const res = await chat(first, { max_tokens: 4 });
        completion += ((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens;
      }
      await first.close();
      s = undefined;

      const second = await start({ dataDir });
      const { data } = await usage(second, "?group_by=key");
      expect(data).toHaveLength(1);
      expect(data[0]).toMatchObject({ requests: 2, completion_tokens: completion });
      expect(data[0]?.group).toMatch(/^key_[0-9a-f]{12}$/);
    } finally {
      await s?.close();
      s = undefined;
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("answers for a time range", async () => {
    const server = await start();
    expect((await chat(server, { max_tokens: 2 })).status).toBe(200);
    await waitForRecords(server, 1);
    const now = Math.floor(Date.now() / 1000);
    expect((await usage(server, `?since=${now - 60}&until=${now + 60}`)).data).toHaveLength(1);
    expect((await usage(server, `?since=${now - 7200}&until=${now - 3600}`)).data).toHaveLength(0);
    const iso = new Date((now + 60) * 1000).toISOString();
    expect((await usage(server, `?until=${iso}&group_by=variant`)).data).toMatchObject([{ group: "none" }]);
  });
});

describe("admin auth", () => {
  async function admin(server: TestServer, query: string, authorization?: string) {
    const res = await fetch(`${server.url}/admin/usage${query}`, {
      headers: authorization ? { authorization } : {},
    });
    const json = (await res.json()) as { error?: { type: string; code: string | null; param: string | null } };
    if (res.status !== 200) assertMatchesSchema("ErrorResponse", json);
    return { status: res.status, error: json.error };
  }

  it("needs ADMIN_API_KEY when it is set: 401 without or wrong, 403 for an API key", async () => {
    const server = await start();
    expect(await admin(server, "")).toMatchObject({ status: 401, error: { code: "missing_api_key" } });
    expect(await admin(server, "", "Bearer nope")).toMatchObject({ status: 401, error: { code: "invalid_api_key" } });
    expect(await admin(server, "", `Bearer ${USER}`)).toMatchObject({
      status: 403,
      error: { type: "permission_error", code: "permission_denied" },
    });
    expect((await admin(server, "", `Bearer ${ADMIN}`)).status).toBe(200);
    // The admin key opens /v1 too (it sees every tenant's objects there).
    expect((await chat(server, {}, { authorization: `Bearer ${ADMIN}` })).status).toBe(200);
  });

  it("refuses bad queries with 400 naming the parameter", async () => {
    const server = await start();
    const auth = `Bearer ${ADMIN}`;
    expect(await admin(server, "?group_by=user", auth)).toMatchObject({ status: 400, error: { param: "group_by" } });
    expect(await admin(server, "?since=yesterday", auth)).toMatchObject({ status: 400, error: { param: "since" } });
    expect(await admin(server, "?since=2000&until=1000", auth)).toMatchObject({
      status: 400,
      error: { param: "since" },
    });
    expect(await admin(server, "?limit=5", auth)).toMatchObject({ status: 400, error: { code: "unknown_parameter" } });
  });

  it("is open when no admin key is configured", async () => {
    const server = await start({ adminApiKey: undefined });
    expect((await admin(server, "")).status).toBe(200);
  });
});

describe("the request log", () => {
  it("has exactly one line per request, with the record and the request id", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(...chunk.toString("utf8").split("\n").filter(Boolean));
        done();
      },
    });
    const server = await start({ logger: pino({ level: "info" }, sink) });
    const ok = await chat(server, { max_tokens: 2 }, { "x-request-id": "trace-1" });
    expect(ok.headers.get("x-request-id")).toBe("trace-1");
    const refused = await chat(server, { top_p: 9 }, { "x-request-id": "bad id with spaces" });
    const generated = refused.headers.get("x-request-id") ?? "";
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    await waitForRecords(server, 2);

    const requests = lines
      .map((l) => JSON.parse(l) as { msg?: string; requestId?: string; record?: UsageRecord })
      .filter((l) => l.msg === "request");
    expect(requests.map((l) => l.requestId).sort()).toEqual([generated, "trace-1"].sort());
    for (const line of requests) expect(line.record?.request_id).toBe(line.requestId);
    expect(requests.find((l) => l.requestId === "trace-1")?.record).toMatchObject({
      status: 200,
      served_model: "roundhouse-tiny",
    });
    expect(requests.find((l) => l.requestId === generated)?.record).toMatchObject({
      status: 400,
      error_code: "invalid_value",
    });
    expect(lines.join("\n")).not.toContain("Hello there");
  });
});
