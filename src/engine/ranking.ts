// Reranking on a loaded reranker GGUF: node-llama-cpp's ranking context, made once per model on
// first use. The model's classification head scores each query + document pair (llama.cpp's rank
// pooling: a BERT-style reranker reads its first token, a Qwen 3 reranker its last), through the
// model's own rerank template (`tokenizer.chat_template.rerank`) when it has one.
import type { LlamaModel, LlamaRankingContext, Token } from "node-llama-cpp";
import { type LoadedModel, sideContext } from "./pool.ts";

/** Why a model cannot rerank, or undefined when it can (its GGUF has a classification head). */
export function cannotRank(model: LlamaModel): string | undefined {
  if (model.fileInsights.supportsRanking) return undefined;
  return "its GGUF has no classification head (cls.weight or cls.output.weight) with a separator, end token or rerank template; a reranker GGUF such as bge-reranker or Qwen3-Reranker has one";
}

export function rankingContext(loaded: LoadedModel): Promise<LlamaRankingContext> {
  return sideContext(loaded, "ranking", (model, options) => model.createRankingContext(options));
}

/** A query's or document's tokens, as the ranking context tokenizes text (no leading space added):
 * tokenized once, the length check and the scoring read the same tokens. */
export function rankingTokens(model: LlamaModel, text: string): Token[] {
  return model.tokenize(text, false, "trimLeadingSpace");
}

/** Tokens the model evaluates for one pair: the template's, the query's and the document's. */
export function pairLength(context: LlamaRankingContext, query: Token[], document: Token[]): number {
  return context.calculateInputLength(query, document);
}

/** A relevance score in [0, 1] per document, in order. The context evaluates one pair at a time
 * (it holds one sequence), so an aborted request stops between documents. */
export async function rank(
  context: LlamaRankingContext,
  query: Token[],
  documents: readonly Token[][],
  signal: AbortSignal,
): Promise<number[]> {
  const scores: number[] = [];
  for (const document of documents) {
    signal.throwIfAborted();
    scores.push(await context.rank(query, document));
  }
  return scores;
}
