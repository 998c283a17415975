// The engine's metrics as operators know them from llama-server and vLLM (issue #25, item 5):
// queue time, deferred requests and KV cache usage, against the real server and model (time
// per output token comes from each request's record: test/unit/telemetry-metrics.test.ts).
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: [
      "models:",
      "  - id: one-seq",
      "    provider: llama",
      `    path: ${TINY_MODEL}`,
      "    context_size: 256",
      "    parallel: 1",
      "    threads: 1",
      "    preload: true",
    ].join("\n"),
  });
});
afterAll(async () => {
  await s?.close();
});

const metric = async (line: RegExp): Promise<number | undefined> => {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const match = text.split("\n").find((l) => line.test(l));
  return match === undefined ? undefined : Number(match.split(" ").at(-1));
};

it("a request that finds the one sequence busy is deferred and its wait is timed", async () => {
  // The one sequence held, as a running request holds it.
  const lease = await s.services.pool.acquire("one-seq", 1);
  const waiting = s.client.chat.completions.create({
    model: "one-seq",
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 2,
  });
  for (let i = 0; (await metric(/^roundhouse_queue_depth\{model="one-seq"\}/)) !== 1; i++) {
    expect(i, "the request never queued").toBeLessThan(200);
    await new Promise((r) => setTimeout(r, 25));
  }
  lease.release();
  await waiting;
  expect(await metric(/^roundhouse_requests_deferred_total\{model="one-seq"\}/)).toBe(1);
  expect(await metric(/^roundhouse_request_queue_time_seconds_count\{model="one-seq"\}/)).toBe(2);
  expect(await metric(/^roundhouse_request_queue_time_seconds_sum\{model="one-seq"\}/)).toBeGreaterThan(0);
});

it("KV cache usage counts the tokens a running request holds", async () => {
  const stream = await s.client.chat.completions.create({
    model: "one-seq",
    messages: [{ role: "user", content: "Tell me a story about a fox." }],
    max_tokens: 32,
    stream: true,
  });
  const iterator = stream[Symbol.asyncIterator]();
  await iterator.next();
  const usage = await metric(/^roundhouse_kv_cache_usage_ratio\{model="one-seq"\}/);
  expect(usage).toBeGreaterThan(0);
  expect(usage).toBeLessThanOrEqual(1);
  while (!(await iterator.next()).done) {
    // read it to its end
  }
});
