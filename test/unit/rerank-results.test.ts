// How a local reranker's scores become results (rankedResults): most relevant first, ties in the
// order sent, the first top_n, and the documents only when return_documents asks, as Cohere and
// Jina shape them.
import { describe, expect, it } from "vitest";
import { RerankRequest, rankedResults } from "../../src/openai/rerank.ts";

const request = (extra: object = {}) =>
  RerankRequest.parse({ model: "m", query: "q", documents: ["a", { text: "b", id: 7 }, "c"], ...extra });

describe("rankedResults", () => {
  it("orders by score, ties in the order the documents came", () => {
    expect(rankedResults(request(), [0.2, 0.9, 0.2])).toEqual([
      { index: 1, relevance_score: 0.9 },
      { index: 0, relevance_score: 0.2 },
      { index: 2, relevance_score: 0.2 },
    ]);
  });

  it("keeps the top_n best", () => {
    expect(rankedResults(request({ top_n: 1 }), [0.2, 0.9, 0.5]).map((r) => r.index)).toEqual([1]);
    expect(rankedResults(request({ top_n: 10 }), [0.2, 0.9, 0.5])).toHaveLength(3);
  });

  it("returns a string document as {text} and an object as sent, only when asked", () => {
    const results = rankedResults(request({ return_documents: true }), [0.1, 0.9, 0.5]);
    expect(results.map((r) => r.document)).toEqual([{ text: "b", id: 7 }, { text: "c" }, { text: "a" }]);
    expect(rankedResults(request({ return_documents: false }), [0.1, 0.9, 0.5])[0]).not.toHaveProperty("document");
  });
});
