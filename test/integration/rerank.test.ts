// POST /v1/rerank, /v1/reranking and /rerank (issue #19, item 4, the upstream half): the body
// passes to an upstream reranker as sent, under its own model name, and its ranking comes back;
// a local model is refused (no reranker head is loaded here). Real HTTP, a fake upstream.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { envelopeOf } from "../helpers/http.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

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
    operations: [rerank]`;
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

describe("rerank", () => {
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
