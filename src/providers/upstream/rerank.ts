// An upstream reranker's answer (llama-server, vLLM, TEI, Jina, Cohere shapes): `results` with
// an `index` and a `relevance_score` each (TEI's bare array of {index, score} too), and its
// usage when it reports one. Anything else is a protocol failure, named.
import type { RerankResult } from "../../openai/rerank.ts";

export type ParsedRerank =
  | { kind: "ok"; results: RerankResult[]; promptTokens: number | undefined }
  | { kind: "invalid"; problem: string };

export function parseRerank(text: string): ParsedRerank {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { kind: "invalid", problem: "a body that is not JSON" };
  }
  const list = Array.isArray(body) ? body : (body as { results?: unknown } | null)?.results;
  if (!Array.isArray(list)) return { kind: "invalid", problem: "an answer without a results list" };
  const results: RerankResult[] = [];
  for (const item of list) {
    const r = item as {
      index?: unknown;
      relevance_score?: unknown;
      score?: unknown;
      document?: unknown;
      text?: unknown;
    };
    const score = typeof r.relevance_score === "number" ? r.relevance_score : r.score;
    if (typeof r.index !== "number" || typeof score !== "number") {
      return { kind: "invalid", problem: "a result without a numeric index and relevance_score" };
    }
    const document = r.document ?? (typeof r.text === "string" ? { text: r.text } : undefined);
    results.push({ index: r.index, relevance_score: score, ...(document === undefined ? {} : { document }) });
  }
  const usage = Array.isArray(body)
    ? undefined
    : (body as { usage?: { prompt_tokens?: unknown; total_tokens?: unknown } }).usage;
  const tokens = usage?.prompt_tokens ?? usage?.total_tokens;
  return { kind: "ok", results, promptTokens: typeof tokens === "number" ? tokens : undefined };
}
