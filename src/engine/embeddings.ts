// Embeddings of a loaded model: node-llama-cpp's embedding context, made once per model on
// first use, pooled as the GGUF says (`<arch>.pooling_type`), each vector L2-normalised as
// OpenAI's are, so a dot product is the cosine.
import type { LlamaEmbeddingContext, Token } from "node-llama-cpp";
import { type LoadedModel, sideContext } from "./pool.ts";

export function embeddingContext(loaded: LoadedModel): Promise<LlamaEmbeddingContext> {
  return sideContext(loaded, "embedding", (model, options) => model.createEmbeddingContext(options));
}

/** Tokens the model evaluates for an input: its tokens plus the BOS/EOS the embedding context adds. */
export function evaluatedLength(context: LlamaEmbeddingContext, tokens: readonly Token[]): number {
  return context.calculateInputLength([...tokens]);
}

/** One vector per input, in order. The context evaluates one input at a time (it holds one sequence). */
export async function embed(
  context: LlamaEmbeddingContext,
  inputs: readonly (readonly Token[])[],
  signal: AbortSignal,
): Promise<number[][]> {
  const vectors: number[][] = [];
  for (const tokens of inputs) {
    signal.throwIfAborted();
    // Copied: the context adds BOS/EOS to the array it is given.
    const { vector } = await context.getEmbeddingFor([...tokens]);
    vectors.push(normalised(vector));
  }
  return vectors;
}

function normalised(vector: readonly number[]): number[] {
  let sum = 0;
  for (const x of vector) sum += x * x;
  const norm = Math.sqrt(sum);
  return norm === 0 ? [...vector] : vector.map((x) => x / norm);
}
