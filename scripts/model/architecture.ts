// The tiny model's shape and its untrained weights: a llama-architecture GGUF that
// llama.cpp loads and llama-finetune can train. Seeded, so a rebuild is identical.
import { type GgufMetadata, type GgufTensorInput, gguf } from "../../src/engine/gguf.ts";
import type { Vocabulary } from "./bpe.ts";

export interface ModelDims {
  nVocab: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  /** Per-head width of Q, K and V. It may exceed nEmbd / nHead (llama.cpp reads
   * attention.key_length): V is frozen random, so a head copies a token only as
   * well as its headDim-wide random projection tells tokens apart. */
  headDim: number;
  nFf: number;
  contextLength: number;
  ropeFreqBase: number;
  rmsEps: number;
}

/** What the GGUF needs from a tokenizer: llama.cpp's SPM ("llama") vocabulary, as trained by bpe.ts. */
export type TokenizerVocab = Vocabulary;

export interface ModelSpec {
  name: string;
  dims: ModelDims;
  vocab: TokenizerVocab;
  chatTemplate: string;
  seed: number;
  /** Token embeddings are never updated by llama-finetune, so this random scale is
   * what the trained model keeps; 1.0 gives RMS-normed inputs well apart. */
  embeddingStd: number;
  /** Per layer, per head: the offset (tokens back) a head attends to from the
   * start, or "content" for a head left random. See `modelTensors`. */
  heads: HeadPlan[][];
  /** Std of attn_output and ffn_down in units of 1/sqrt(fan_in). Attention is the
   * only way context reaches a position, and Adam at a stable learning rate grows
   * a weight by ~1e-4 a step: started small, context would stay drowned by the
   * frozen token embedding for thousands of steps. */
  residualScale: number;
  /** Co-occurrence vectors (nVocab × dims, see embeddings.ts) added to the first
   * `dims` embedding dimensions at `scale` per dimension. */
  semantic?: { vectors: Float32Array; dims: number; scale: number };
}

/** A head that starts out attending to the tokens `from`..`to` back (0 = itself),
 * or one left random for its query to learn what to match. */
export type HeadPlan = { from: number; to: number } | "content";

/** "1,2-5,c/1,c" → [[1..1, 2..5, content], [1..1, content]]. */
export function parseHeadPlan(text: string): HeadPlan[][] {
  return text.split("/").map((layer) =>
    layer.split(",").map((h): HeadPlan => {
      if (h.trim() === "c") return "content";
      const [from, to = from] = h.split("-").map(Number);
      if (!Number.isInteger(from) || !Number.isInteger(to) || (from ?? -1) < 0 || (to ?? -1) < (from ?? 0)) {
        throw new Error(`bad head plan entry "${h}" in "${text}"`);
      }
      return { from: from as number, to: to as number };
    }),
  );
}

/** xoshiro128** seeded through splitmix32: fast, good enough, and reproducible. */
export class Rng {
  private s: Uint32Array;
  private spare: number | undefined;

  constructor(seed: number) {
    let x = seed >>> 0;
    const next = () => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s = Uint32Array.from([next(), next(), next(), next()]);
  }

  /** Uniform integer in [0, 2^32). */
  u32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1] as number, 5), 7), 9) >>> 0;
    const t = (s[1] as number) << 9;
    s[2] = (s[2] as number) ^ (s[0] as number);
    s[3] = (s[3] as number) ^ (s[1] as number);
    s[1] = (s[1] as number) ^ (s[2] as number);
    s[0] = (s[0] as number) ^ (s[3] as number);
    s[2] = (s[2] as number) ^ t;
    s[3] = rotl(s[3] as number, 11);
    return result;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 2 ** 32;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[this.int(items.length)] as T;
  }

  /** Standard normal (Box–Muller, keeping the second value for the next call). */
  normal(): number {
    if (this.spare !== undefined) {
      const v = this.spare;
      this.spare = undefined;
      return v;
    }
    const u = 1 - this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

const rotl = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

export function checkDims(d: ModelDims): void {
  // Q8_0 and Q4_0 quantize rows in blocks of 32 values.
  for (const [k, v] of Object.entries({ nEmbd: d.nEmbd, nFf: d.nFf, nVocab: d.nVocab })) {
    if (v % 32 !== 0) throw new Error(`${k} = ${v} must be a multiple of 32 to quantize`);
  }
  if (d.headDim % 2 !== 0 || (d.nHead * d.headDim) % 32 !== 0)
    throw new Error("nHead × headDim must be a multiple of 32");
  if (d.nHead % d.nHeadKv !== 0) throw new Error("nHead must divide by nHeadKv");
}

export function parameterCount(d: ModelDims): number {
  const q = d.headDim * d.nHead;
  const kv = d.headDim * d.nHeadKv;
  const layer = 2 * d.nEmbd + 2 * d.nEmbd * q + 2 * d.nEmbd * kv + 3 * d.nEmbd * d.nFf;
  return 2 * d.nVocab * d.nEmbd + d.nEmbd + d.nLayer * layer;
}

export function modelMetadata(spec: ModelSpec): GgufMetadata {
  const { dims: d, vocab: v } = spec;
  if (v.tokens.length !== d.nVocab) throw new Error(`vocabulary has ${v.tokens.length} tokens, dims say ${d.nVocab}`);
  return new Map([
    ["general.architecture", gguf.string("llama")],
    ["general.name", gguf.string(spec.name)],
    ["general.file_type", gguf.u32(0)], // all F32
    ["llama.vocab_size", gguf.u32(d.nVocab)],
    ["llama.context_length", gguf.u32(d.contextLength)],
    ["llama.embedding_length", gguf.u32(d.nEmbd)],
    ["llama.block_count", gguf.u32(d.nLayer)],
    ["llama.feed_forward_length", gguf.u32(d.nFf)],
    ["llama.attention.head_count", gguf.u32(d.nHead)],
    ["llama.attention.head_count_kv", gguf.u32(d.nHeadKv)],
    ["llama.attention.layer_norm_rms_epsilon", gguf.f32(d.rmsEps)],
    ["llama.attention.key_length", gguf.u32(d.headDim)],
    ["llama.attention.value_length", gguf.u32(d.headDim)],
    ["llama.rope.dimension_count", gguf.u32(d.headDim)],
    ["llama.rope.freq_base", gguf.f32(d.ropeFreqBase)],
    ["tokenizer.ggml.model", gguf.string("llama")],
    ["tokenizer.ggml.tokens", gguf.strings(v.tokens)],
    ["tokenizer.ggml.scores", gguf.numbers("f32", v.scores)],
    ["tokenizer.ggml.token_type", gguf.numbers("i32", v.types)],
    ["tokenizer.ggml.unknown_token_id", gguf.u32(v.unkId)],
    ["tokenizer.ggml.bos_token_id", gguf.u32(v.bosId)],
    ["tokenizer.ggml.eos_token_id", gguf.u32(v.eosId)],
    ["tokenizer.ggml.add_bos_token", gguf.bool(true)],
    ["tokenizer.ggml.add_eos_token", gguf.bool(false)],
    ["tokenizer.ggml.add_space_prefix", gguf.bool(v.addSpacePrefix)],
    ["tokenizer.chat_template", gguf.string(spec.chatTemplate)],
  ]);
}

/** Untrained F32 weights, in llama.cpp's tensor names and ggml dim order
 * ([inputs, outputs] for a projection).
 *
 * llama-finetune never updates token embeddings, attn_k or attn_v (K and V reach
 * attention through the KV cache, which passes no gradient), so keys stay a fixed
 * random function of each token and attention cannot learn to look at "the token
 * two back": a model trained from a plain random init ends up a bigram model. So
 * every embedding gets one shared component `b`, and "positional" heads get keys
 * that read only `b` (the same key for every token, turned by RoPE with its
 * position) and a query tuned so that RoPE makes them attend `offset` tokens back.
 * Queries and everything after attention still train; "content" heads keep
 * random keys for queries to learn to match. */
export function modelTensors(spec: ModelSpec): GgufTensorInput[] {
  const d = spec.dims;
  const rng = new Rng(spec.seed);
  const headDim = d.headDim;
  const qDim = headDim * d.nHead;
  const kvDim = headDim * d.nHeadKv;
  if (spec.heads.length !== d.nLayer || spec.heads.some((l) => l.length !== d.nHead)) {
    throw new Error(`heads must plan ${d.nHead} heads for each of ${d.nLayer} layers`);
  }
  // Grouped-query attention (fewer KV heads) is fine for random "content" heads; a positional
  // head sets its own key rows, so it needs a key head of its own.
  if (d.nHeadKv !== d.nHead && spec.heads.some((l) => l.some((h) => h !== "content")))
    throw new Error("positional heads need one key head per query head");
  const normal = (dims: number[], std: number): Float32Array => {
    const n = dims.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = rng.normal() * std;
    return out;
  };
  const ones = (n: number) => new Float32Array(n).fill(1);
  const t = (name: string, dims: number[], data: Float32Array): GgufTensorInput => ({ name, dims, type: "F32", data });
  // Projections get std 1/sqrt(fan_in) so activations keep their scale.
  const proj = (fanIn: number, fanOut: number, residual = false) =>
    normal([fanIn, fanOut], (residual ? spec.residualScale : 1) / Math.sqrt(fanIn));

  // Shared component: random signs, same scale as the random part, unit direction bHat.
  const bHat = Float32Array.from({ length: d.nEmbd }, () => (rng.next() < 0.5 ? -1 : 1) / Math.sqrt(d.nEmbd));
  const embd = normal([d.nEmbd, d.nVocab], spec.embeddingStd);
  const bScale = spec.embeddingStd * Math.sqrt(d.nEmbd);
  for (let tok = 0; tok < d.nVocab; tok++) {
    for (let i = 0; i < d.nEmbd; i++)
      embd[tok * d.nEmbd + i] = (embd[tok * d.nEmbd + i] ?? 0) + bScale * (bHat[i] ?? 0);
  }
  // After RMS norm, an input's component along bHat is about sqrt(nEmbd / 2).
  const along = Math.sqrt(d.nEmbd / 2);
  /** Rows of one head in a [nEmbd, outDim] projection set to read only bHat. */
  const setHeadRows = (w: Float32Array, head: number, rowValue: (j: number) => number) => {
    for (let j = 0; j < headDim; j++) {
      const row = (head * headDim + j) * d.nEmbd;
      const v = rowValue(j) / along;
      for (let i = 0; i < d.nEmbd; i++) w[row + i] = v * (bHat[i] ?? 0);
    }
  };
  const queries = new Map<string, Float64Array>();

  const tensors = [
    t("token_embd.weight", [d.nEmbd, d.nVocab], embd),
    t("output_norm.weight", [d.nEmbd], ones(d.nEmbd)),
    t("output.weight", [d.nEmbd, d.nVocab], proj(d.nEmbd, d.nVocab)),
  ];
  for (let l = 0; l < d.nLayer; l++) {
    const q = proj(d.nEmbd, qDim);
    const k = proj(d.nEmbd, kvDim);
    (spec.heads[l] ?? []).forEach((plan, h) => {
      if (plan === "content") return;
      const key = `${plan.from}-${plan.to}`;
      if (!queries.has(key)) queries.set(key, positionalQuery(plan, headDim, d.ropeFreqBase));
      const query = queries.get(key) as Float64Array;
      // Every key pair is (1, 0): the same key for every token, turned only by RoPE.
      setHeadRows(k, h, (j) => (j % 2 === 0 ? 1 : 0));
      setHeadRows(q, h, (j) => query[j] ?? 0);
    });
    const b = `blk.${l}`;
    tensors.push(
      t(`${b}.attn_norm.weight`, [d.nEmbd], ones(d.nEmbd)),
      t(`${b}.attn_q.weight`, [d.nEmbd, qDim], q),
      t(`${b}.attn_k.weight`, [d.nEmbd, kvDim], k),
      t(`${b}.attn_v.weight`, [d.nEmbd, kvDim], proj(d.nEmbd, kvDim)),
      t(`${b}.attn_output.weight`, [qDim, d.nEmbd], proj(qDim, d.nEmbd, true)),
      t(`${b}.ffn_norm.weight`, [d.nEmbd], ones(d.nEmbd)),
      t(`${b}.ffn_gate.weight`, [d.nEmbd, d.nFf], proj(d.nEmbd, d.nFf)),
      t(`${b}.ffn_up.weight`, [d.nEmbd, d.nFf], proj(d.nEmbd, d.nFf)),
      t(`${b}.ffn_down.weight`, [d.nFf, d.nEmbd], proj(d.nFf, d.nEmbd, true)),
    );
  }
  return tensors;
}

/**
 * The constant query (one value per head dim) that, against a key of (1, 0) in
 * every RoPE pair, makes a head attend `from..to` tokens back. After RoPE the score
 * at δ tokens back is Σ_i u_i cos(θ_i δ) − v_i sin(θ_i δ) over pairs i with query
 * (u_i, v_i), scaled by 1/sqrt(headDim). A query of A·(cos θ_i Δ, −sin θ_i Δ) scores
 * A·Σ cos(θ_i (δ − Δ)): a peak at δ = Δ, which at A = 49 leaves the nearest other
 * token ~e^-6 of the weight at any context length. A window averages the peaks of
 * its offsets at a lower A: a soft bump with ~95% of the weight inside.
 */
export function positionalQuery(win: { from: number; to: number }, headDim: number, ropeBase: number): Float64Array {
  const amplitude = win.from === win.to ? 49 : 10;
  const width = win.to - win.from + 1;
  const q = new Float64Array(headDim);
  for (let offset = win.from; offset <= win.to; offset++) {
    for (let i = 0; i < headDim / 2; i++) {
      const angle = ropeBase ** ((-2 * i) / headDim) * offset;
      q[2 * i] = (q[2 * i] ?? 0) + (amplitude * Math.cos(angle)) / width;
      q[2 * i + 1] = (q[2 * i + 1] ?? 0) - (amplitude * Math.sin(angle)) / width;
    }
  }
  return q;
}

/** Attention weights a positional head gives to 0..span-1 tokens back (for tests). */
export function positionalWeights(query: Float64Array, headDim: number, ropeBase: number, span: number): number[] {
  const thetas = Array.from({ length: headDim / 2 }, (_, i) => ropeBase ** ((-2 * i) / headDim));
  const scores = Array.from(
    { length: span },
    (_, delta) =>
      thetas.reduce(
        (s, th, i) => s + (query[2 * i] ?? 0) * Math.cos(th * delta) - (query[2 * i + 1] ?? 0) * Math.sin(th * delta),
        0,
      ) / Math.sqrt(headDim),
  );
  const max = Math.max(...scores);
  const exp = scores.map((s) => Math.exp(s - max));
  const total = exp.reduce((a, b) => a + b, 0);
  return exp.map((e) => e / total);
}
