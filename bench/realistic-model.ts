// A realistic-size model for the benchmark: the tiny model's architecture code at
// GPT-2-small-like widths (~115M parameters), random weights, the tiny model's own
// tokenizer and chat template, quantized to Q8_0. Per-token cost on a model this size is
// dominated by matrix work as in real deployments, which the 4M-parameter tiny model is
// not: there the serving layer's overhead dominates.
//
// Written at bench time (nothing large is committed) and cached under the tools cache
// dir, keyed on everything that changes the file, so reruns start at once.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import {
  checkDims,
  type ModelDims,
  type ModelSpec,
  modelMetadata,
  modelTensors,
  parameterCount,
  type TokenizerVocab,
} from "../scripts/model/architecture.ts";
import { quantize } from "../scripts/model/pipeline.ts";
import { type GgufMetadata, type GgufValue, readGguf, writeGguf } from "../src/engine/gguf.ts";
import { cacheRoot, toolsDir } from "../src/engine/llama-tools.ts";

export interface RealisticShape {
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nFf: number;
  /** Grouped-query attention (Qwen2.5-0.5B: 14 heads, 2 KV heads); nHead when unset. */
  nHeadKv?: number;
}

export const DEFAULT_SHAPE: RealisticShape = { nEmbd: 768, nLayer: 12, nHead: 12, nFf: 3072 };

export interface RealisticModel {
  path: string;
  parameters: number;
  bytes: number;
  dims: ModelDims;
  /** True when this call wrote the file, false when it came from the cache. */
  built: boolean;
}

const ARCHITECTURE_SOURCE = new URL("../scripts/model/architecture.ts", import.meta.url);
/** Bump when the way the file is made changes, so stale cache entries are not reused. */
const GENERATOR_VERSION = 1;
const SEED = 20_240_601;
/** llama.cpp's token type for control tokens (BOS, EOS, <|end|>, …). */
const TOKEN_TYPE_CONTROL = 3;

function requireValue<T extends GgufValue["type"]>(
  metadata: GgufMetadata,
  key: string,
  type: T,
): Extract<GgufValue, { type: T }> {
  const v = metadata.get(key);
  if (!v || v.type !== type) throw new Error(`tokenizer source lacks ${key} (${type})`);
  return v as Extract<GgufValue, { type: T }>;
}

function numberArray(metadata: GgufMetadata, key: string): number[] {
  const v = metadata.get(key);
  if (
    v?.type !== "array" ||
    v.itemType === "string" ||
    v.itemType === "bool" ||
    v.itemType === "u64" ||
    v.itemType === "i64"
  ) {
    throw new Error(`tokenizer source lacks ${key} (a numeric array)`);
  }
  // Narrowed to number[] | bigint[]; token types and scores are i32/f32 in practice.
  return (v.value as (number | bigint)[]).map((x) => Number(x));
}

function u32(metadata: GgufMetadata, key: string): number {
  const v = metadata.get(key);
  if (!v || (v.type !== "u32" && v.type !== "i32")) throw new Error(`tokenizer source lacks ${key}`);
  return v.value;
}

/** The vocabulary fields architecture.ts needs, read from the tiny model's GGUF. */
function vocabFrom(metadata: GgufMetadata): TokenizerVocab {
  const tokens = requireValue(metadata, "tokenizer.ggml.tokens", "array");
  if (tokens.itemType !== "string") throw new Error("tokenizer.ggml.tokens is not a string array");
  const addSpace = metadata.get("tokenizer.ggml.add_space_prefix");
  return {
    tokens: tokens.value,
    scores: numberArray(metadata, "tokenizer.ggml.scores"),
    types: numberArray(metadata, "tokenizer.ggml.token_type"),
    unkId: u32(metadata, "tokenizer.ggml.unknown_token_id"),
    bosId: u32(metadata, "tokenizer.ggml.bos_token_id"),
    eosId: u32(metadata, "tokenizer.ggml.eos_token_id"),
    addSpacePrefix: addSpace?.type === "bool" ? addSpace.value : false,
  };
}

/** Returns the cached model, writing and quantizing it first if needed. */
export async function ensureRealisticModel(
  tokenizerSource: string,
  shape: RealisticShape = DEFAULT_SHAPE,
  log: (line: string) => void = () => {},
): Promise<RealisticModel> {
  const source = await readGguf(tokenizerSource);
  const vocab = vocabFrom(source.metadata);
  const template = requireValue(source.metadata, "tokenizer.chat_template", "string").value;
  const dims: ModelDims = {
    nVocab: vocab.tokens.length,
    nEmbd: shape.nEmbd,
    nLayer: shape.nLayer,
    nHead: shape.nHead,
    nHeadKv: shape.nHeadKv ?? shape.nHead,
    headDim: shape.nEmbd / shape.nHead,
    nFf: shape.nFf,
    contextLength: 2048,
    ropeFreqBase: 10_000,
    rmsEps: 1e-5,
  };
  checkDims(dims);

  // The weights come from architecture.ts: a change there makes a new file.
  const architecture = createHash("sha256").update(readFileSync(ARCHITECTURE_SOURCE)).digest("hex");
  // Every tokenizer.* key of the source goes into the key, so a new tiny-model vocabulary
  // (or template) yields a new file rather than a stale one.
  const tokenizerKeys = [...source.metadata].filter(([k]) => k.startsWith("tokenizer."));
  const key = createHash("sha256")
    .update(
      JSON.stringify(
        { GENERATOR_VERSION, SEED, dims, tools: await toolsDir(), architecture, tokenizer: tokenizerKeys },
        (_, v) => (typeof v === "bigint" ? v.toString() : v),
      ),
    )
    .digest("hex")
    .slice(0, 12);
  const dir = join(cacheRoot(), "bench");
  const prefix = `realistic-${shape.nEmbd}x${shape.nLayer}-`;
  const path = join(dir, `${prefix}${key}-q8_0.gguf`);
  const parameters = parameterCount(dims);
  if (existsSync(path)) return { path, parameters, bytes: statSync(path).size, dims, built: false };

  mkdirSync(dir, { recursive: true });
  log(`writing a ${(parameters / 1e6).toFixed(0)}M-parameter random llama model (F32), then Q8_0 …`);
  const spec: ModelSpec = {
    name: "roundhouse-bench-realistic",
    dims,
    vocab,
    chatTemplate: template,
    seed: SEED,
    embeddingStd: 1,
    residualScale: 1,
    // Plain random heads: the positional-head initialisation exists to help training,
    // and speed does not depend on the values of the weights.
    heads: Array.from({ length: dims.nLayer }, () => Array.from({ length: dims.nHead }, () => "content" as const)),
  };
  const metadata = modelMetadata(spec);
  // Keep the source's exact tokenizer metadata (keys architecture.ts does not write, too).
  for (const [k, v] of tokenizerKeys) metadata.set(k, v);
  const tensors = modelTensors(spec);

  // Random weights would end replies at random, and at different points on the two
  // servers' slightly different arithmetic. Zero rows in the output projection give those
  // tokens logit 0 while the others are ~N(0, 1) over ~1k tokens, so greedy decoding never
  // picks an end-of-generation (or any control) token: every reply is exactly max_tokens
  // long on both servers, and tokens/s compare like with like.
  const output = tensors.find((t) => t.name === "output.weight");
  if (!output) throw new Error("architecture.ts made no output.weight");
  vocab.types.forEach((type, id) => {
    if (type === TOKEN_TYPE_CONTROL || id === vocab.eosId || id === vocab.unkId) {
      output.data.fill(0, id * dims.nEmbd, (id + 1) * dims.nEmbd);
    }
  });

  const f32 = `${path}.f32.tmp`;
  const q8 = `${path}.tmp`;
  try {
    await writeGguf(f32, metadata, tensors);
    await quantize(f32, q8, "Q8_0", availableParallelism());
    // Rename last, so an interrupted build never looks cached.
    renameSync(q8, path);
    // Files of this shape from older keys (vocabulary, tools or architecture.ts) are ~120 MB
    // each and never read again; other shapes (the fine-tuning bench's) are kept.
    for (const f of readdirSync(dir)) {
      if (f.startsWith(prefix) && f.endsWith("-q8_0.gguf") && join(dir, f) !== path) rmSync(join(dir, f));
    }
  } finally {
    rmSync(f32, { force: true });
    rmSync(q8, { force: true });
  }
  return { path, parameters, bytes: statSync(path).size, dims, built: true };
}
