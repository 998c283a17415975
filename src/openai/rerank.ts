// POST /v1/rerank (also /rerank and /v1/reranking), as llama-server, vLLM, Jina and Cohere
// clients send it: a query, documents (strings, or objects with `text`), `top_n`,
// `return_documents`. Served by upstream rerankers, to which the body passes as sent (loose:
// the upstream judges its own extra fields); the answer's results come back as it sent them.
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
