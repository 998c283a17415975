// POST /v1/rerank, /v1/reranking and /rerank (issue #19, item 4): the built-in reranker GGUF
// scored through node-llama-cpp's ranking context; the body passed to an upstream reranker as
// sent, under its own model name, and its ranking back; a model without a reranking head refused.
// Real HTTP, a fake upstream.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startLlamaServer } from "../../bench/servers.ts";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { envelopeOf } from "../helpers/http.ts";
import { REPO, startServer, type TestServer, tinyConfig, tinyModelEntry } from "../helpers/server.ts";

const RERANK_MODEL = `${REPO}/models/roundhouse-tiny-rerank-f16.gguf`;

const KEY = "sk-rerank-81c2d4";
let s: TestServer;
let up: FakeUpstream;
beforeAll(async () => {
  up = await startFakeUpstream();
  const reranker = `
  - id: reranker
    provider: openai
    base_url: ${up.baseUrl}
    model: bge-reranker-v2-m3
    retries: 0
    operations: [rerank]
${tinyModelEntry("tiny-rerank", { path: RERANK_MODEL, contextSize: 64, preload: false, extra: ["operations: [rerank]"] })}`;
  s = await startServer({ config: tinyConfig().concat(reranker), apiKeys: [KEY] });
});
afterAll(async () => {
  await s?.close();
  await up?.close();
});

const rerank = (path: string, body: unknown, key: string | null = KEY) =>
  fetch(`${s.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });

const DOCUMENTS = [
  "Paris is the capital of France.",
  "Bananas are rich in potassium.",
  { text: "The capital of Japan is Tokyo, not Paris." },
];

interface RerankBody {
  model: string;
  results: { index: number; relevance_score: number; document?: unknown }[];
  usage: { prompt_tokens: number; total_tokens: number };
}

describe("local reranker", () => {
  const FACTS = [
    "The capital of Spain is Madrid.",
    "A cow says moo.",
    "The capital of France is Paris.",
    "The opposite of hot is cold.",
  ];

  it("ranks the document that answers the query first, scores in [0, 1], counting the tokens it read", async () => {
    const res = await rerank("/v1/rerank", {
      model: "tiny-rerank",
      query: "Tell me the capital of France.",
      documents: FACTS,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as RerankBody;
    expect(body.model).toBe("tiny-rerank");
    expect(body.results.map((r) => r.index).sort()).toEqual([0, 1, 2, 3]);
    expect(body.results[0]?.index).toBe(2);
    const scores = body.results.map((r) => r.relevance_score);
    expect(scores).toEqual([...scores].sort((a, b) => b - a));
    for (const score of scores) expect(score >= 0 && score <= 1, `score ${score}`).toBe(true);
    expect(body.results[0]?.relevance_score).toBeGreaterThan(0.5);
    // Tokens read: each pair in the model's rerank template, as node-llama-cpp counts them.
    const model = await (await getLlama({ gpu: false })).loadModel({ modelPath: RERANK_MODEL });
    const context = await model.createRankingContext({ contextSize: 64, threads: 1 });
    const expected = FACTS.reduce((n, d) => n + context.calculateInputLength("Tell me the capital of France.", d), 0);
    await context.dispose();
    await model.dispose();
    expect(body.usage).toEqual({ prompt_tokens: expected, total_tokens: expected });
  });

  it("keeps the top_n best, returns documents when asked, and scores the same pair the same every time", async () => {
    const ask = (extra: object) =>
      rerank("/rerank", { model: "tiny-rerank", query: "What sound does a cow make?", documents: FACTS, ...extra });
    const all = (await (await ask({})).json()) as RerankBody;
    const top = (await (await ask({ top_n: 2, return_documents: true })).json()) as RerankBody;
    expect(top.results).toEqual(all.results.slice(0, 2).map((r) => ({ ...r, document: { text: FACTS[r.index] } })));
    expect(top.results[0]?.index).toBe(1);
    expect(all.results[0]).not.toHaveProperty("document");
  });

  it("scores as llama-server scores the same GGUF (its /rerank, --reranking)", async () => {
    const query = "What is the opposite of hot?";
    const ours = (await (
      await rerank("/v1/rerank", { model: "tiny-rerank", query, documents: FACTS })
    ).json()) as RerankBody;
    const workDir = mkdtempSync(join(tmpdir(), "roundhouse-rerank-"));
    const server = await startLlamaServer(
      { modelPath: RERANK_MODEL, contextSize: 64, parallel: 1, threads: 1, workDir },
      ["--reranking"],
    );
    try {
      const res = await fetch(`${server.baseUrl}/rerank`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query, documents: FACTS }),
      });
      const theirs = (await res.json()) as RerankBody;
      const byIndex = (b: RerankBody) => [...b.results].sort((x, y) => x.index - y.index).map((r) => r.relevance_score);
      const expected = byIndex(theirs);
      byIndex(ours).forEach((score, i) => {
        expect(score).toBeCloseTo(expected[i] as number, 3);
      });
      expect(ours.usage.prompt_tokens).toBe(theirs.usage.prompt_tokens);
    } finally {
      await server.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  });

  it("refuses a document too long for its context, naming it, instead of cutting it", async () => {
    // context_size 64 is rounded up to llama.cpp's 256.
    const long = "The capital of France is Paris. ".repeat(60);
    const res = await rerank("/v1/rerank", { model: "tiny-rerank", query: "capital", documents: ["short", long] });
    expect(res.status).toBe(400);
    const { error } = envelopeOf(await res.text());
    expect(error).toMatchObject({ param: "documents", code: "context_length_exceeded" });
    expect(error.message).toMatch(
      /^documents\[1\] with the query is \d+ tokens long; model tiny-rerank reads at most 255 tokens per document\.$/,
    );
  });

  it("serves rerank only: a chat with the reranker is a 400 naming the operation", async () => {
    const res = await fetch(`${s.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: "tiny-rerank", messages: [{ role: "user", content: "hi" }] }),
    });
    expect(res.status).toBe(400);
    expect(envelopeOf(await res.text()).error.message).toMatch(/tiny-rerank does not serve chat/);
  });
});

describe("upstream reranker", () => {
  it("passes the request to an upstream reranker and answers with its ranking", async () => {
    for (const path of ["/v1/rerank", "/v1/reranking", "/rerank"]) {
      const res = await rerank(path, {
        model: "reranker",
        query: "capital of France",
        documents: DOCUMENTS,
        top_n: 2,
        return_documents: true,
      });
      expect(res.status, path).toBe(200);
      expect(res.headers.get("x-roundhouse-model")).toBe("reranker");
      const body = (await res.json()) as {
        model: string;
        results: { index: number; relevance_score: number; document?: { text: string } }[];
        usage: { prompt_tokens: number };
      };
      expect(body.model).toBe("reranker");
      expect(body.results.map((r) => r.index)).toEqual([0, 2]);
      expect(body.results[0]?.relevance_score).toBeGreaterThan(body.results[1]?.relevance_score ?? 1);
      expect(body.results[0]?.document).toEqual({ text: "Paris is the capital of France." });
      expect(body.usage.prompt_tokens).toBe(15);
      const sent = up.requests.at(-1);
      expect(sent?.path).toBe("/v1/rerank");
      expect(sent?.body).toMatchObject({ model: "bge-reranker-v2-m3", query: "capital of France", top_n: 2 });
    }
  });

  it("refuses a model that does not rerank, naming it and the operation", async () => {
    const res = await rerank("/v1/rerank", { model: "tiny", query: "q", documents: ["a"] });
    expect(res.status).toBe(400);
    const { error } = envelopeOf(await res.text());
    expect(error).toMatchObject({ code: "unsupported_operation", param: "model" });
    expect(error.message).toMatch(/roundhouse-tiny does not serve rerank/);
  });

  it("refuses bad input in OpenAI's envelope, and a missing key outside /v1 too", async () => {
    const empty = await rerank("/v1/rerank", { model: "reranker", query: "q", documents: [] });
    expect(empty.status).toBe(400);
    expect(envelopeOf(await empty.text()).error.param).toBe("documents");
    expect((await rerank("/rerank", { model: "reranker", query: "q", documents: ["a"] }, null)).status).toBe(401);
  });
});
