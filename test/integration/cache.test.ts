// The response cache through the real server: hits replay as JSON or SSE, only
// completed answers are stored, and a shared Redis serves replicas.
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { type PrivateRedis, privateRedis } from "../helpers/redis.ts";
import { startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

const question = (content: string) => ({
  model: "tiny",
  messages: [{ role: "user" as const, content }],
  temperature: 0,
  max_tokens: 48,
});

async function post(server: TestServer, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${server.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, cache: res.headers.get("x-roundhouse-cache"), text: await res.text() };
}

function sseChunks(text: string): OpenAI.ChatCompletionChunk[] {
  const frames = text.split("\n\n").filter((f) => f !== "");
  expect(frames.at(-1)).toBe("data: [DONE]");
  return frames.slice(0, -1).map((f) => JSON.parse(f.slice("data: ".length)) as OpenAI.ChatCompletionChunk);
}

describe("memory cache", () => {
  let s: TestServer;
  beforeAll(async () => {
    const second = [
      "  - id: tiny-copy",
      "    provider: llama",
      `    path: ${TINY_MODEL}`,
      "    context_size: 512",
      "    threads: 1",
    ].join("\n");
    s = await startServer({ config: `${tinyConfig()}\n${second}` });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("serves a repeated deterministic request from the cache with the original usage and a fresh id", async () => {
    const body = question("What is the capital of France?");
    const first = await post(s, body);
    const second = await post(s, body);
    expect([first.cache, second.cache]).toEqual(["miss", "hit"]);
    const a = JSON.parse(first.text) as OpenAI.ChatCompletion;
    const b = JSON.parse(second.text) as OpenAI.ChatCompletion;
    assertMatchesSchema("CreateChatCompletionResponse", b);
    expect(b.choices).toEqual(a.choices);
    expect(b.usage).toEqual(a.usage);
    expect(b.id).not.toBe(a.id);
  });

  it("replays a JSON answer as a well-formed stream, and a streamed answer as JSON", async () => {
    const body = question("What is the capital of Spain?");
    const json = await post(s, body);
    const replayed = await post(s, { ...body, stream: true, stream_options: { include_usage: true } });
    expect([json.cache, replayed.cache]).toEqual(["miss", "hit"]);
    const chunks = sseChunks(replayed.text);
    for (const chunk of chunks) assertMatchesSchema("CreateChatCompletionStreamResponse", chunk);
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    const original = JSON.parse(json.text) as OpenAI.ChatCompletion;
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? "").join("")).toBe(original.choices[0]?.message.content);
    expect(chunks.at(-2)?.choices[0]?.finish_reason).toBe(original.choices[0]?.finish_reason);
    expect(chunks.at(-1)?.usage).toEqual(original.usage);

    const streamFirst = question("What is the capital of Italy?");
    const streamed = await post(s, { ...streamFirst, stream: true });
    const asJson = await post(s, streamFirst);
    expect([streamed.cache, asJson.cache]).toEqual(["miss", "hit"]);
    const text = sseChunks(streamed.text)
      .map((c) => c.choices[0]?.delta.content ?? "")
      .join("");
    expect((JSON.parse(asJson.text) as OpenAI.ChatCompletion).choices[0]?.message.content).toBe(text);
  });

  it("replays a stream as it was generated: one chunk per original delta, the same text in each", async () => {
    const body = { ...question("What is the capital of Germany?"), stream: true };
    const live = await post(s, body);
    const replayed = await post(s, body);
    expect([live.cache, replayed.cache]).toEqual(["miss", "hit"]);
    const deltas = (text: string) =>
      sseChunks(text)
        .map((c) => c.choices[0]?.delta.content)
        .filter((d) => d !== undefined && d !== "");
    expect(deltas(live.text).length).toBeGreaterThan(2);
    expect(deltas(replayed.text)).toEqual(deltas(live.text));
  });

  it("gives a replayed tool call a fresh id, as OpenAI's ids are unique per response", async () => {
    const body = {
      ...question("What is the capital of France?"),
      max_tokens: 200,
      tools: [{ type: "function", function: { name: "capital", parameters: { type: "object", properties: {} } } }],
      tool_choice: "required",
    };
    const first = await post(s, body);
    const second = await post(s, body);
    expect([first.cache, second.cache]).toEqual(["miss", "hit"]);
    const callOf = (text: string) => (JSON.parse(text) as OpenAI.ChatCompletion).choices[0]?.message.tool_calls?.[0];
    const [a, b] = [callOf(first.text), callOf(second.text)];
    expect(a?.id).toMatch(/^call_/);
    expect(b?.id).toMatch(/^call_/);
    expect(b?.id).not.toBe(a?.id);
    expect(b?.type === "function" && a?.type === "function" && b.function).toEqual(
      a?.type === "function" && a.function,
    );
  });

  it("does not cache sampled requests unless they are seeded", async () => {
    const sampled = { ...question("Hello!"), temperature: 0.9, max_tokens: 8 };
    expect((await post(s, sampled)).cache).toBe("bypass");
    expect((await post(s, sampled)).cache).toBe("bypass");
    const seeded = { ...sampled, seed: 7 };
    expect((await post(s, seeded)).cache).toBe("miss");
    expect((await post(s, seeded)).cache).toBe("hit");
  });

  it("honours cache-control no-cache (refresh) and no-store (leave no trace)", async () => {
    const body = question("Spell cat.");
    expect((await post(s, body, { "cache-control": "no-store" })).cache).toBe("bypass");
    expect((await post(s, body, { "cache-control": "no-cache" })).cache).toBe("miss");
    expect((await post(s, body)).cache).toBe("hit");
  });

  it("never shares entries between models, even on the same file", async () => {
    const body = question("What is 2 plus 2?");
    expect((await post(s, body)).cache).toBe("miss");
    expect((await post(s, { ...body, model: "tiny-copy" })).cache).toBe("miss");
    expect((await post(s, { ...body, model: "roundhouse-tiny" })).cache).toBe("hit");
  });

  it("stores nothing for a stream the client abandoned", async () => {
    const body = { ...question("Tell me a story."), max_tokens: 200, stream: true };
    const controller = new AbortController();
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    const reader = res.body?.getReader();
    await reader?.read();
    controller.abort();
    await new Promise((r) => setTimeout(r, 200));
    expect((await post(s, body)).cache).toBe("miss");
  });

  it("purges with DELETE /admin/cache, per model or whole", async () => {
    const body = question("What is the capital of Germany?");
    await post(s, body);
    await post(s, { ...body, model: "tiny-copy" });
    const purged = await fetch(`${s.url}/admin/cache?model=tiny`, { method: "DELETE" });
    expect(((await purged.json()) as { deleted: number }).deleted).toBeGreaterThan(0);
    expect((await post(s, body)).cache).toBe("miss");
    expect((await post(s, { ...body, model: "tiny-copy" })).cache).toBe("hit");
    await fetch(`${s.url}/admin/cache`, { method: "DELETE" });
    expect((await post(s, { ...body, model: "tiny-copy" })).cache).toBe("miss");
  });

  it("counts hits, misses and bypasses in /metrics", async () => {
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    for (const result of ["hit", "miss", "bypass"]) {
      const line = metrics.split("\n").find((l) => l.startsWith(`roundhouse_cache_requests_total{result="${result}"}`));
      expect(Number(line?.split(" ")[1])).toBeGreaterThan(0);
    }
  });
});

describe("cache scope", () => {
  const asKey = async (server: TestServer, key: string, content: string) => {
    const res = await fetch(`${server.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
      body: JSON.stringify(question(content)),
    });
    await res.text();
    return res.headers.get("x-roundhouse-cache");
  };

  it("keeps each tenant's entries its own by default: another key's identical request is a miss", async () => {
    const server = await startServer({ config: tinyConfig(), apiKeys: ["key-a", "key-b"] });
    try {
      const content = `What is the capital of Peru? ${Date.now()}`;
      expect(await asKey(server, "key-a", content)).toBe("miss");
      expect(await asKey(server, "key-b", content)).toBe("miss");
      expect(await asKey(server, "key-a", content)).toBe("hit");
      expect(await asKey(server, "key-b", content)).toBe("hit");
    } finally {
      await server.close();
    }
  });

  it("shares entries across tenants with scope: global", async () => {
    const server = await startServer({
      config: tinyConfig("", "cache: {scope: global}\n"),
      apiKeys: ["key-a", "key-b"],
    });
    try {
      const content = `What is the capital of Chile? ${Date.now()}`;
      expect(await asKey(server, "key-a", content)).toBe("miss");
      expect(await asKey(server, "key-b", content)).toBe("hit");
    } finally {
      await server.close();
    }
  });
});

describe("redis cache", () => {
  let redis: PrivateRedis;
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    redis = await privateRedis();
    await redis.start();
    const config = tinyConfig("", `cache: {store: redis, url: "${redis.url}", timeout: 200ms}`);
    a = await startServer({ config });
    b = await startServer({ config });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it("lets two replicas serve each other's entries", async () => {
    const body = question("What colour is the sky?");
    expect((await post(a, body)).cache).toBe("miss");
    await new Promise((r) => setTimeout(r, 100));
    const fromB = await post(b, body);
    expect(fromB.cache).toBe("hit");
  });

  it("keeps answering as misses while Redis is down, and caches again when it is back", async () => {
    const body = question("What sound does a cow make?");
    await redis.stop();
    const down = await post(a, body);
    expect(down.status).toBe(200);
    expect(down.cache).toBe("miss");
    await redis.start();
    let cache = "miss";
    for (let i = 0; i < 50 && cache !== "hit"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      cache = (await post(a, body)).cache ?? "";
    }
    expect(cache).toBe("hit");
  });
});
