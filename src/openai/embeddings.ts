// POST /v1/embeddings, as OpenAI defines it (CreateEmbeddingRequest / CreateEmbeddingResponse).
import { z } from "zod";

/** OpenAI's bound on the inputs of one request. */
export const MAX_EMBEDDING_INPUTS = 2048;

const tokenId = z.int().min(0);
const inputs = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(MAX_EMBEDDING_INPUTS);

export const EmbeddingRequest = z.strictObject({
  model: z.string().min(1),
  input: z.union([
    z.string().min(1, { error: "input must not be an empty string" }),
    inputs(z.string().min(1, { error: "input must not hold an empty string" })),
    inputs(tokenId),
    inputs(z.array(tokenId).min(1)),
  ]),
  encoding_format: z
    .enum(["float", "base64"])
    .nullable()
    .transform((v) => v ?? undefined)
    .optional(),
  dimensions: z.int().min(1).nullable().optional(),
  user: z.string().nullable().optional(),
});
export type EmbeddingRequest = z.infer<typeof EmbeddingRequest>;

/** One input: text, or token ids the client tokenized itself. */
export type EmbeddingInput = string | number[];

/** The request's inputs as a list, whichever of the four shapes it came in. */
export function embeddingInputs(input: EmbeddingRequest["input"]): EmbeddingInput[] {
  if (typeof input === "string") return [input];
  if (typeof input[0] === "number") return [input as number[]];
  return input as EmbeddingInput[];
}

export interface Embedding {
  object: "embedding";
  index: number;
  /** base64: the little-endian float32 bytes, as OpenAI sends them and its SDKs decode them. */
  embedding: number[] | string;
}

export interface CreateEmbeddingResponse {
  object: "list";
  data: Embedding[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

export function embeddingResponse(
  model: string,
  vectors: readonly (readonly number[])[],
  promptTokens: number,
  format: "float" | "base64" = "float",
): CreateEmbeddingResponse {
  return {
    object: "list",
    data: vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding: format === "base64" ? base64Float32(vector) : [...vector],
    })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

function base64Float32(vector: readonly number[]): string {
  const bytes = Buffer.alloc(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] as number, i * 4);
  return bytes.toString("base64");
}
