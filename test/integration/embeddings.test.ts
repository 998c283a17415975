// POST /v1/embeddings end to end: the built-in embedding model through node-llama-cpp, the
// official openai package, LangChain's OpenAIEmbeddings and the AI SDK's embed as clients, and
// an upstream passthrough against the fake upstream. Bodies are checked against OpenAI's spec.
import { createOpenAI } from "@ai-sdk/openai";
import { OpenAIEmbeddings } from "@langchain/openai";
import { embed, embedMany } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { assertMatchesSchema, schemaErrors } from "../helpers/openapi.ts";
import { REPO, startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

const EMBED_MODEL = `${REPO}/models/roundhouse-tiny-embed-q8_0.gguf`;

let s: TestServer;
let up: FakeUpstream;
const records: UsageRecord[] = [];

beforeAll(async () => {
  up = await startFakeUpstream();
  const config = tinyConfig("operations: [chat, completions]", "cache: {mode: deterministic}\n").concat(`
  - id: embed
    provider: llama
    path: ${EMBED_MODEL}
    operations: [embeddings]
    parallel: 2
    threads: 1
    context_size: 64
  - id: remote-embed
    provider: openai
    base_url: ${up.baseUrl}
    model: text-embedding-3-small
    operations: [embeddings]
experiments:
  - name: split-embed
    variants:
      - {name: local, model: embed, weight: 1}
      - {name: remote, model: remote-embed, weight: 1}
`);
  s = await startServer({ config });
  // Compiles the spec's validator now: seconds on this event loop, which would otherwise let
  // the server's idle keep-alive timer race the next request on the same connection.
  schemaErrors("CreateEmbeddingResponse", {});
  s.services.telemetry.onRecord((r) => records.push(r));
});

afterAll(async () => {
  await s?.close();
  await up?.close();
});

function cosine(a: readonly number[], b: readonly number[]): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += (a[i] as number) * (b[i] as number);
  return dot;
}

// The fields the tests read, loosely: a 200's body or an error envelope.
interface Answer {
  data: { embedding: number[] | string }[];
  usage: { prompt_tokens: number; total_tokens: number };
  error: { message: string; param: string | null; code: string | null };
}

async function post(body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.baseURL}/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  return { res, json: (await res.json()) as Answer };
}

describe("local embeddings", () => {
  it("answers the official SDK (base64 by default) with unit vectors, identical texts identically", async () => {
    const reply = await s.client.embeddings.create({
      model: "embed",
      input: ["What is the capital of France?", "What is the capital of France?", "The dog says woof."],
    });
    expect(reply.data).toHaveLength(3);
    const [a, b, c] = reply.data.map((d) => d.embedding) as [number[], number[], number[]];
    expect(a).toHaveLength(128);
    expect(Math.hypot(...a)).toBeCloseTo(1, 5);
    expect(cosine(a, b)).toBeCloseTo(1, 6);
    expect(cosine(a, c)).toBeLessThan(0.99);
    expect(reply.usage.prompt_tokens).toBeGreaterThan(3);
    expect(reply.usage.total_tokens).toBe(reply.usage.prompt_tokens);
  });

  it("gives the same vectors as float and as base64, and matches the spec", async () => {
    const float = await post({ model: "embed", input: "Spell cat.", encoding_format: "float" });
    const base64 = await post({ model: "embed", input: "Spell cat.", encoding_format: "base64" });
    expect(float.res.status).toBe(200);
    assertMatchesSchema("CreateEmbeddingResponse", float.json);
    // The spec models only the float form; the base64 one differs in that field alone.
    assertMatchesSchema("CreateEmbeddingResponse", { ...base64.json, data: float.json.data });
    const encoded = base64.json.data[0]?.embedding as string;
    expect(typeof encoded).toBe("string");
    const bytes = Buffer.from(encoded, "base64");
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    const floats = float.json.data[0]?.embedding as number[];
    expect(decoded).toHaveLength(floats.length);
    for (const [i, x] of decoded.entries()) expect(x).toBeCloseTo(floats[i] as number, 6);
  });

  it("embeds token arrays as the text they spell", async () => {
    const text = "What is the capital of France?";
    const model = s.services.pool.get("embed")?.model;
    if (!model) throw new Error("embed is not loaded");
    const tokens = Array.from(model.tokenize(text, false), Number);
    const byText = await post({ model: "embed", input: text, encoding_format: "float" });
    const byTokens = await post({ model: "embed", input: tokens, encoding_format: "float" });
    const both = await post({ model: "embed", input: [tokens, tokens.slice(0, 3)], encoding_format: "float" });
    expect(byTokens.res.status).toBe(200);
    expect(byTokens.json.data[0]?.embedding).toEqual(byText.json.data[0]?.embedding);
    expect(byTokens.json.usage.prompt_tokens).toBe(byText.json.usage.prompt_tokens);
    expect(both.json.data).toHaveLength(2);
    expect(both.json.data[0]?.embedding).toEqual(byText.json.data[0]?.embedding);
  });

  it("refuses what it cannot do with a 400 that says what", async () => {
    const dims = await post({ model: "embed", input: "hi", dimensions: 64 });
    expect(dims.res.status).toBe(400);
    expect(dims.json.error.param).toBe("dimensions");
    expect(dims.json.error.message).toContain("128");
    expect((await post({ model: "embed", input: "hi", dimensions: 128 })).res.status).toBe(200);

    const long = await post({ model: "embed", input: ["short", "word ".repeat(200)] });
    expect(long.res.status).toBe(400);
    expect(long.json.error.message).toMatch(/input\[1\] is \d+ tokens long/);

    const outside = await post({ model: "embed", input: [1, 2, 99999] });
    expect(outside.res.status).toBe(400);
    expect(outside.json.error.message).toContain("99999");

    for (const input of ["", [], [""]]) {
      expect((await post({ model: "embed", input })).res.status).toBe(400);
    }
    const unknown = await post({ model: "embed", input: "hi", truncate: true });
    expect(unknown.res.status).toBe(400);
  });

  it("answers a model that does not serve the operation with a 400 naming both", async () => {
    const chatOnly = await post({ model: "tiny", input: "hi" });
    expect(chatOnly.res.status).toBe(400);
    expect(chatOnly.json.error).toMatchObject({ param: "model", code: "unsupported_operation" });
    expect(chatOnly.json.error.message).toContain("roundhouse-tiny does not serve embeddings");

    const chat = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "embed", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(chat.status).toBe(400);
    expect(((await chat.json()) as { error: { message: string } }).error.message).toContain(
      "embed does not serve chat",
    );
  });

  it("caches embeddings: a repeated input is a hit with the same vectors and usage", async () => {
    const input = `cache me ${Date.now()}`;
    const first = await post({ model: "embed", input, encoding_format: "float" });
    const second = await post({ model: "embed", input, encoding_format: "base64" });
    expect(first.res.headers.get("x-roundhouse-cache")).toBe("miss");
    expect(second.res.headers.get("x-roundhouse-cache")).toBe("hit");
    const bytes = Buffer.from(second.json.data[0]?.embedding as string, "base64");
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    for (const [i, x] of decoded.entries()) expect(x).toBeCloseTo(first.json.data[0]?.embedding[i] as number, 6);
    expect(second.json.usage).toEqual(first.json.usage);
  });

  it("records usage labelled with the operation", async () => {
    const before = records.length;
    const reply = await s.client.embeddings.create({ model: "embed", input: `count ${Date.now()}` });
    await expect.poll(() => records.length).toBeGreaterThan(before);
    const record = records.at(-1) as UsageRecord;
    expect(record).toMatchObject({
      operation: "embeddings",
      served_model: "embed",
      status: 200,
      prompt_tokens: reply.usage.prompt_tokens,
      completion_tokens: 0,
    });
    expect(record.ttft_ms).toBeUndefined();
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    expect(metrics).toMatch(/roundhouse_requests_total\{[^}]*operation="embeddings"[^}]*\} \d+/);
  });
});

describe("clients", () => {
  it("LangChain's OpenAIEmbeddings embeds documents and a query", async () => {
    const embeddings = new OpenAIEmbeddings({
      model: "embed",
      apiKey: "unused",
      configuration: { baseURL: s.baseURL },
      maxRetries: 0,
    });
    const docs = await embeddings.embedDocuments(["The cat says meow.", "The cat says meow."]);
    const query = await embeddings.embedQuery("The cat says meow.");
    expect(docs).toHaveLength(2);
    expect(query).toHaveLength(128);
    expect(cosine(docs[0] as number[], query)).toBeCloseTo(1, 5);
  });

  it("the AI SDK's embed and embedMany", async () => {
    const provider = createOpenAI({ baseURL: s.baseURL, apiKey: "unused" });
    const one = await embed({ model: provider.textEmbeddingModel("embed"), value: "Hello!", maxRetries: 0 });
    const many = await embedMany({
      model: provider.textEmbeddingModel("embed"),
      values: ["Hello!", "Goodbye!"],
      maxRetries: 0,
    });
    expect(one.embedding).toHaveLength(128);
    expect(many.embeddings).toHaveLength(2);
    expect(cosine(one.embedding, many.embeddings[0] as number[])).toBeCloseTo(1, 5);
    expect(one.usage.tokens).toBeGreaterThan(0);
  });
});

describe("upstream and experiments", () => {
  it("passes the request through to an upstream, under its model name, whatever the encoding", async () => {
    const before = up.requests.length;
    const reply = await s.client.embeddings.create({ model: "remote-embed", input: ["a", "b"] });
    const sent = up.requests.slice(before).find((r) => r.path.endsWith("/embeddings"));
    expect(sent?.path).toBe("/v1/embeddings");
    expect(sent?.body).toMatchObject({ model: "text-embedding-3-small", input: ["a", "b"], encoding_format: "base64" });
    expect(reply.data.map((d) => d.embedding)).toEqual([
      [1, 0.5, -0.25],
      [2, 0.5, -0.25],
    ]);
    expect(reply.usage.prompt_tokens).toBe(14);
  });

  it("splits an experiment's embeddings between a local and an upstream model", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const { res } = await post({ model: "split-embed", input: `user ${i}` }, { "x-user-id": `user-${i}` });
      expect(res.status).toBe(200);
      seen.add(res.headers.get("x-roundhouse-variant") ?? "");
    }
    expect(seen).toEqual(new Set(["local", "remote"]));
  });
});
