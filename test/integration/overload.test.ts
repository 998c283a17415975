// Far more concurrent requests than the model has sequences plus queue: the excess is refused
// at once with 429 rate_limit_exceeded and Retry-After, every accepted request completes, nothing
// hangs, and once the burst is over the server takes a full load again straight away.
// Latencies are reported, not asserted: they depend on the machine.
import OpenAI from "openai";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { envelopeOf, rawRequest } from "../helpers/http.ts";
import { eventually, report, STRESS } from "../helpers/report.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

const PARALLEL = 2;
const QUEUE = 4;
const BURST = Number(process.env.OVERLOAD_BURST ?? (STRESS ? 600 : 80));
const WAVES = STRESS ? 5 : 2;

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: [
      "models:",
      "  - id: roundhouse-tiny",
      "    provider: llama",
      `    path: ${TINY_MODEL}`,
      "    aliases: [tiny]",
      "    context_size: 512",
      `    parallel: ${PARALLEL}`,
      "    threads: 1",
      "    preload: true",
      "    max_tokens: 64",
      `    queue: {max_waiting: ${QUEUE}, timeout_ms: 120000}`,
    ].join("\n"),
    logger: pino({ level: "silent" }),
  });
});
afterAll(async () => {
  await s?.close();
});

interface Outcome {
  status: number;
  ms: number;
  retryAfter: string | undefined;
  body: string;
}

async function one(i: number): Promise<Outcome> {
  const started = performance.now();
  const res = await rawRequest(s.url, {
    method: "POST",
    path: "/v1/chat/completions",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "tiny",
      messages: [{ role: "user", content: `Write a long story, number ${i}.` }],
      max_tokens: 64,
      temperature: 1,
      stream: i % 3 === 0,
    }),
    timeoutMs: 120_000,
  });
  const retry = res.headers["retry-after"];
  return {
    status: res.status,
    ms: performance.now() - started,
    retryAfter: Array.isArray(retry) ? retry[0] : retry,
    body: res.body,
  };
}

const percentile = (xs: number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
};

describe("overload", () => {
  it(`${WAVES} bursts of ${BURST} concurrent requests against ${PARALLEL} sequences + ${QUEUE} queued`, async () => {
    const figures: Record<string, string | number> = { "sequences + queue": `${PARALLEL} + ${QUEUE}` };
    let refusedTotal = 0;
    let acceptedTotal = 0;
    for (let wave = 1; wave <= WAVES; wave++) {
      const started = performance.now();
      const waveStart = new Date();
      const outcomes = await Promise.all(Array.from({ length: BURST }, (_, i) => one(i)));
      const waveSeconds = (performance.now() - started) / 1000;

      const accepted = outcomes.filter((o) => o.status === 200);
      const refused = outcomes.filter((o) => o.status === 429);
      // Nothing else: no 5xx, no hang (each request has a deadline), no other refusal.
      expect(outcomes.map((o) => o.status).filter((st) => st !== 200 && st !== 429)).toEqual([]);
      expect(accepted.length).toBeGreaterThanOrEqual(PARALLEL + QUEUE);
      expect(refused.length).toBeGreaterThan(0);
      for (const r of refused) {
        expect(Number(r.retryAfter)).toBeGreaterThanOrEqual(1);
        expect(envelopeOf(r.body).error).toMatchObject({ type: "requests", code: "rate_limit_exceeded" });
      }
      // Every accepted request completed: a whole JSON completion, or a stream that ends with [DONE].
      for (const a of accepted) {
        if (a.body.startsWith("data:")) expect(a.body.trimEnd().endsWith("data: [DONE]")).toBe(true);
        else
          expect((JSON.parse(a.body) as { choices: { finish_reason: string }[] }).choices[0]?.finish_reason).toMatch(
            /stop|length/,
          );
      }
      refusedTotal += refused.length;
      acceptedTotal += accepted.length;
      const refusedMs = refused.map((o) => o.ms);
      const acceptedMs = accepted.map((o) => o.ms);
      // The client runs in this process too, so its timings include handling the whole burst's
      // connections; the usage log has the server's own time from request to answer.
      const serverMs: number[] = [];
      for await (const r of s.services.telemetry.usage.query(waveStart, new Date(Date.now() + 1000))) {
        if (r.status === 429) serverMs.push(r.latency_ms);
      }
      figures[`wave ${wave}`] =
        `${BURST} sent: ${accepted.length} completed, ${refused.length} refused (429) in ${waveSeconds.toFixed(2)} s; ` +
        `429 in the server p50 ${percentile(serverMs, 50).toFixed(1)} ms / max ${Math.max(...serverMs).toFixed(1)} ms, ` +
        `at the client p50 ${percentile(refusedMs, 50).toFixed(0)} ms / max ${Math.max(...refusedMs).toFixed(0)} ms; ` +
        `completed p50 ${percentile(acceptedMs, 50).toFixed(0)} ms / max ${Math.max(...acceptedMs).toFixed(0)} ms`;

      // The burst is over: the queue empties, and a full load (every sequence and queue place) is served.
      const idleMs = await eventually(() => {
        const slots = s.services.pool.get("roundhouse-tiny")?.slots;
        return slots?.busy === 0 && slots.waiting === 0;
      }, 30_000);
      expect(idleMs).toBeDefined();
      const recoveryStarted = performance.now();
      const client = new OpenAI({ baseURL: s.baseURL, apiKey: "unused", maxRetries: 0 });
      const after = await Promise.all(
        Array.from({ length: PARALLEL + QUEUE }, () =>
          client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
        ),
      );
      for (const a of after) expect(a.choices[0]?.finish_reason).toMatch(/stop|length/);
      figures[`wave ${wave} recovery`] =
        `idle ${Math.round(idleMs ?? -1)} ms after the burst; then ${PARALLEL + QUEUE} concurrent requests all served in ${Math.round(performance.now() - recoveryStarted)} ms`;
    }

    // The SDK sees a 429 as RateLimitError (what clients back off on).
    const hold = Array.from({ length: PARALLEL + QUEUE }, (_, i) => one(i));
    await eventually(() => s.services.pool.get("roundhouse-tiny")?.slots.waiting === QUEUE, 30_000);
    const sdk = new OpenAI({ baseURL: s.baseURL, apiKey: "unused", maxRetries: 0 });
    const error = await sdk.chat.completions
      .create({ model: "tiny", messages: [{ role: "user", content: "x" }], max_tokens: 1 })
      .catch((e: unknown) => e);
    await Promise.all(hold);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);

    report("overload", {
      ...figures,
      "total completed / refused": `${acceptedTotal} / ${refusedTotal}`,
      "5xx / hangs": 0,
    });
  }, 600_000);
});
