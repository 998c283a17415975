// Embeddings and rerank on local GGUF models: node-llama-cpp's embedding and ranking contexts,
// each input sized against the context first (never cut short), usage counted exactly.
import type { Token } from "node-llama-cpp";
import { embed, embeddingContext, evaluatedLength } from "../engine/embeddings.ts";
import type { ModelPool } from "../engine/pool.ts";
import { cannotRank, pairLength, rank, rankingContext, rankingTokens } from "../engine/ranking.ts";
import { type EmbeddingRequest, embeddingInputs } from "../openai/embeddings.ts";
import { invalidRequest } from "../openai/errors.ts";
import { documentText, type RerankRequest, rankedResults } from "../openai/rerank.ts";
import { checkTokenIds } from "./llama-request.ts";
import type { ChatContext, EmbeddingResult, RerankAnswer } from "./provider.ts";

export async function localEmbeddings(
  pool: ModelPool,
  modelId: string,
  req: EmbeddingRequest,
  ctx: ChatContext,
): Promise<EmbeddingResult> {
  const lease = await pool.acquire(modelId, 1, ctx.signal);
  try {
    const { model, spec } = lease.loaded;
    const context = await embeddingContext(lease.loaded);
    const width = model.embeddingVectorSize;
    if (req.dimensions != null && req.dimensions !== width) {
      throw invalidRequest(
        `dimensions: model ${spec.id} makes vectors of ${width} dimensions and cannot shorten them; leave dimensions out or send ${width}.`,
        "dimensions",
      );
    }
    const inputs = embeddingInputs(req.input).map((input, index) => {
      if (typeof input === "string") return model.tokenize(input, false);
      checkTokenIds(lease.loaded, input, `input[${index}]`, "input");
      return input as Token[];
    });
    let promptTokens = 0;
    inputs.forEach((tokens, index) => {
      const length = evaluatedLength(context, tokens);
      // Never a silent truncation: the client learns which input is too long, and by how much.
      if (length >= lease.loaded.contextSize) {
        throw invalidRequest(
          `input[${index}] is ${length} tokens long; model ${spec.id} embeds at most ${lease.loaded.contextSize - 1} tokens per input.`,
          "input",
          "context_length_exceeded",
        );
      }
      promptTokens += length;
    });
    const vectors = await embed(context, inputs, ctx.signal);
    return { vectors, usage: { promptTokens, completionTokens: 0 } };
  } finally {
    lease.release();
  }
}

export async function localRerank(
  pool: ModelPool,
  modelId: string,
  req: RerankRequest,
  ctx: ChatContext,
): Promise<RerankAnswer> {
  const lease = await pool.acquire(modelId, 1, ctx.signal);
  try {
    const { model, spec } = lease.loaded;
    const why = cannotRank(model);
    if (why) throw invalidRequest(`Model ${spec.id} cannot rerank: ${why}.`, "model");
    const context = await rankingContext(lease.loaded);
    const query = rankingTokens(model, req.query);
    const documents = req.documents.map((d) => rankingTokens(model, documentText(d)));
    let promptTokens = 0;
    documents.forEach((document, index) => {
      const length = pairLength(context, query, document);
      // Never a silent truncation: the client learns which document is too long, and by how much.
      if (length >= context.contextSize) {
        throw invalidRequest(
          `documents[${index}] with the query is ${length} tokens long; model ${spec.id} reads at most ${context.contextSize - 1} tokens per document.`,
          "documents",
          "context_length_exceeded",
        );
      }
      promptTokens += length;
    });
    const scores = await rank(context, query, documents, ctx.signal);
    return { results: rankedResults(req, scores), usage: { promptTokens, completionTokens: 0 } };
  } finally {
    lease.release();
  }
}
