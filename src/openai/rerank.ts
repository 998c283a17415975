// POST /v1/rerank (also /rerank and /v1/reranking), as llama-server, vLLM, Jina and Cohere
// clients send it: a query, documents (strings, or objects with `text`), `top_n`,
// `return_documents`. Served by local reranker GGUFs (scored here, shaped by rankedResults) and by
// upstream rerankers, to which the body passes as sent (loose: the upstream judges its own extra
// fields); an upstream's results come back as it sent them.
import { z } from "zod";

const Document = z.union([z.string(), z.looseObject({ text: z.string() })]);

export const RerankRequest = z.looseObject({
  model: z.string().min(1),
  query: z.string(),
  documents: z.array(Document).min(1).max(10_000),
  top_n: z.int().min(1).optional(),
  return_documents: z.boolean().optional(),
});
export type RerankRequest = z.output<typeof RerankRequest>;

/** A document's text: the string, or the object's `text`. */
export function documentText(document: RerankRequest["documents"][number]): string {
  return typeof document === "string" ? document : document.text;
}

/**
 * Scores (one per document, in order) as results: most relevant first, the first `top_n`, each
 * with its document when `return_documents` asks (as Cohere and Jina return it: `{text}`, or the
 * object as sent).
 */
export function rankedResults(req: RerankRequest, scores: readonly number[]): RerankResult[] {
  return scores
    .map((relevance_score, index) => ({ index, relevance_score }))
    .sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index)
    .slice(0, req.top_n ?? scores.length)
    .map((r) => {
      const document = req.documents[r.index];
      if (!req.return_documents || document === undefined) return r;
      return { ...r, document: typeof document === "string" ? { text: document } : document };
    });
}

export interface RerankResult {
  index: number;
  relevance_score: number;
  document?: unknown;
}

/** The answer: the upstream's results (most relevant first, as it ranked them) and token usage. */
export function rerankResponse(
  model: string,
  results: readonly RerankResult[],
  promptTokens: number,
): {
  object: "list";
  model: string;
  results: readonly RerankResult[];
  usage: { prompt_tokens: number; total_tokens: number };
} {
  return { object: "list", model, results, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } };
}
