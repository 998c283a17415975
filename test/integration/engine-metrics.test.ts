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

it("a conversation's next turn reuses the prompt its sequence already holds, and says how much", async () => {
  const first: { role: "user" | "assistant"; content: string }[] = [
    { role: "user", content: "My name is Ada and I live in a small town by the sea. Remember it." },
  ];
  const one = await s.client.chat.completions.create({ model: "one-seq", messages: first, max_tokens: 8 });
  const two = await s.client.chat.completions.create({
    model: "one-seq",
    messages: [
      ...first,
      { role: "assistant", content: one.choices[0]?.message.content ?? "" },
      { role: "user", content: "What is my name?" },
    ],
    max_tokens: 4,
  });
  const promptOne = one.usage?.prompt_tokens ?? 0;
  const cached = two.usage?.prompt_tokens_details?.cached_tokens ?? 0;
  // At least the first turn's prompt was held (the last prompt token is always evaluated again).
  expect(cached).toBeGreaterThanOrEqual(promptOne - 1);
  expect(cached).toBeLessThan(two.usage?.prompt_tokens ?? 0);
  // The same figure reaches the metrics (tokens looked up vs found) once the request's record is made.
  const hits = () => metric(/^roundhouse_prefix_cache_hits_total\{model="one-seq"\}/);
  for (let i = 0; ((await hits()) ?? 0) < cached; i++) {
    expect(i, "the record never reached the metrics").toBeLessThan(100);
    await new Promise((r) => setTimeout(r, 20));
  }
  const queries = await metric(/^roundhouse_prefix_cache_queries_total\{model="one-seq"\}/);
  expect(queries).toBeGreaterThan((await hits()) ?? 0);
});

it("two conversations on two sequences each keep their cache: a turn goes back to the sequence holding it", async () => {
  const two = await startServer({
    config: [
      "models:",
      "  - id: two-seq",
      "    provider: llama",
      `    path: ${TINY_MODEL}`,
      "    context_size: 256",
      "    parallel: 2",
      "    threads: 1",
      "    preload: true",
    ].join("\n"),
  });
  try {
    const turn = async (history: { role: "user" | "assistant"; content: string }[], user: string) => {
      const messages = [...history, { role: "user" as const, content: user }];
      const res = await two.client.chat.completions.create({ model: "two-seq", messages, max_tokens: 6 });
      return {
        history: [...messages, { role: "assistant" as const, content: res.choices[0]?.message.content ?? "" }],
        prompt: res.usage?.prompt_tokens ?? 0,
        cached: res.usage?.prompt_tokens_details?.cached_tokens ?? 0,
      };
    };
    // One after the other, as two users who take turns: with the lowest free sequence every time,
    // each would overwrite the other's history.
    const a1 = await turn([], "My name is Ada and I keep bees on a hill above the harbour.");
    const b1 = await turn([], "Tell me about the tallest lighthouse you know of, please.");
    const a2 = await turn(a1.history, "What do I keep?");
    const b2 = await turn(b1.history, "How tall is it?");
    expect(a2.cached).toBeGreaterThanOrEqual(a1.prompt - 1);
    expect(b2.cached).toBeGreaterThanOrEqual(b1.prompt - 1);
  } finally {
    await two.close();
  }
});
