// The built-in reranker: a two-layer Qwen 3 model whose weights are written by hand to score the
// IDF-weighted word overlap between a query and a document, read by llama.cpp's rank pooling the
// way it reads Qwen3-Reranker (the last token, a two-label head, softmax). It knows no meaning,
// only shared words; it exists so that /v1/rerank runs on a real reranker GGUF in tests and the
// quick start, with scores that rank the document that answers a question first.
//
// Why by hand: fine-tuning the tiny model to answer yes/no (as Qwen3-Reranker is trained) left it
// at chance after 6 epochs (the relevant fact above one of the same kind in 47 of 94 held-out
// questions; the llama-architecture model did no better): comparing a word in the query with one
// in the document, far apart, is beyond what it learns here. A lexical overlap is a circuit that
// can be written down exactly.
//
// The rerank template puts the document first: `<s>{document}<|user|>{query}<|assistant|>`.
// Residual stream (E = 3·D + 16 wide): [0] a constant every token carries, [1] "this is the
// separator", [3] "after the separator", [4] the score, then three D-wide blocks: L (the token's
// lexical code: a random unit vector per word, case and leading space ignored, times its IDF
// weight), A and B.
// - Layer 0, head 0: every token attends to the separator if it has seen it (its key is the only
//   non-zero one) and copies its flag into [3]: query tokens are marked, document tokens are not.
// - Layer 1, head 0 attends evenly to the marked tokens and writes the mean of their L into A;
//   head 1 evenly to the unmarked ones (keys of the opposite sign) and writes theirs into B.
// - Layer 1's feed-forward computes A·B into [4] (SwiGLU: silu(β + A_j)·B_j − silu(β)·B_j ≈ A_j·B_j
//   for a large β taken from the constant).
// - cls.output: "yes" reads κ·([4] − τ), "no" reads 0: the score is σ(κ·(A·B − τ)), τ and κ set
//   from the training facts so that the answering fact scores above 0.5 and others below.
// Query and key signals sit on the slowest RoPE pair with a huge rope base, so positions do not
// turn them; every score is exact up to float rounding (no softmax leak beyond e^-22).
import type { GgufMetadata, GgufTensorInput, GgufValue } from "../../src/engine/gguf.ts";
import { gguf } from "../../src/engine/gguf.ts";
import { Rng } from "./architecture.ts";
import { buildFacts, type Fact } from "./corpus.ts";

/** `tokenizer.chat_template.rerank`: node-llama-cpp and llama-server fill {query} and {document}. */
export const RERANK_TEMPLATE = "<s>{document}<|user|>{query}<|assistant|>";
export const RERANK_LABELS = ["yes", "no"] as const;

/** Lexical code width; cross-talk between two random codes has a standard deviation of 1/√D. */
const D = 128;
const E = 3 * D + 16;
const HEAD = D;
const HEADS = 3;
const CONST = 0;
const SEP = 1;
const SEGMENT = 3;
const SCORE = 4;
const L = 16;
const A = L + D;
const B = A + D;
/** The constant's size: with it, every token's RMS is about 1, so RMS norms barely rescale. */
const C = Math.sqrt(E);
/** Query/key signals live on RoPE pair HEAD/2 − 1 (dims 63 and 127, neox order), turned by pos·base^(-126/128). */
const SLOW = HEAD / 2 - 1;
const ROPE_BASE = 1e8;
/** Attention logits: √HEAD · QK_GAIN² apart between attended and ignored tokens (≈ 22.6). */
const QK_GAIN = Math.SQRT2;
const BETA = 15;
const POOLING_RANK = 4;

/** What the reranker needs from the tiny model's tokenizer. */
export interface Tokenizer {
  /** Every token's text, as `tokenizer.ggml.tokens` has it. */
  pieces: readonly string[];
  /** llama.cpp token types: 1 normal, 3 control, 6 byte… */
  types: readonly number[];
  separator: number;
  tokenize(text: string): number[];
}

/** A word as the reranker matches it: lower case, without the leading-space mark. */
export function wordOf(piece: string): string {
  return piece.replaceAll("▁", "").trim().toLowerCase();
}

/** Inverse document frequency weight per word (0..1] over `texts`; words never seen get 1. */
export function idfWeights(texts: readonly string[], tok: Tokenizer): Map<string, number> {
  const df = new Map<string, number>();
  for (const text of texts) {
    for (const word of new Set(tok.tokenize(text).map((t) => wordOf(tok.pieces[t] ?? "")))) {
      if (word) df.set(word, (df.get(word) ?? 0) + 1);
    }
  }
  const idf = (n: number) => Math.log((texts.length + 1) / (n + 1));
  const max = idf(0);
  return new Map([...df].map(([w, n]) => [w, idf(n) / max]));
}

/** Each token's lexical vector (D values): its word's code times its weight; zero for control and empty tokens. */
export function lexicalCodes(tok: Tokenizer, weights: ReadonlyMap<string, number>, seed: number): Float32Array[] {
  const rng = new Rng(seed);
  const codes = new Map<string, Float32Array>();
  const zero = new Float32Array(D);
  return tok.pieces.map((piece, id) => {
    const word = wordOf(piece);
    if (!word || tok.types[id] !== 1) return zero;
    let code = codes.get(word);
    if (!code) {
      code = Float32Array.from({ length: D }, () => rng.normal());
      const norm = Math.hypot(...code);
      code = code.map((x) => x / norm);
      codes.set(word, code);
    }
    const w = weights.get(word) ?? 1;
    return code.map((x) => x * w);
  });
}

/** A·B as the model computes it: the mean code of the query segment (separator, query, last token) · the document segment's (BOS, document). */
export function overlap(codes: readonly Float32Array[], query: readonly number[], document: readonly number[]): number {
  const mean = (ids: readonly number[], extra: number) => {
    const m = new Float64Array(D);
    for (const id of ids) {
      const code = codes[id] as Float32Array;
      for (let j = 0; j < D; j++) m[j] = (m[j] as number) + (code[j] as number);
    }
    return m.map((x) => x / (ids.length + extra));
  };
  const a = mean(query, 2);
  const b = mean(document, 1);
  return a.reduce((s, x, j) => s + x * (b[j] as number), 0);
}

export interface Calibration {
  /** The overlap at which the score is 0.5. */
  threshold: number;
  /** Logit per unit of overlap. */
  gain: number;
}

/** The weights: F32 tensors in llama.cpp's names and ggml order ([inputs, outputs]). */
export function rerankerTensors(tok: Tokenizer, codes: readonly Float32Array[], cal: Calibration): GgufTensorInput[] {
  const t = (name: string, dims: number[], data: Float32Array): GgufTensorInput => ({ name, dims, type: "F32", data });
  /** A projection [nIn, nOut] with `set(out, in, value)`. */
  const proj = (nIn: number, nOut: number) => {
    const w = new Float32Array(nIn * nOut);
    const set = (out: number, input: number, v: number): void => {
      w[out * nIn + input] = v;
    };
    return { w, set };
  };
  const ones = (n: number) => new Float32Array(n).fill(1);
  const qDim = HEAD * HEADS;
  const slot = (head: number, dim: number) => head * HEAD + dim;

  const embd = new Float32Array(E * tok.pieces.length);
  tok.pieces.forEach((_, id) => {
    embd[id * E + CONST] = C;
    if (id === tok.separator) embd[id * E + SEP] = 1;
    embd.set(codes[id] as Float32Array, id * E + L);
  });

  const layers: GgufTensorInput[] = [];
  // Layer 0: mark the tokens after the separator.
  {
    const q = proj(E, qDim);
    const k = proj(E, qDim);
    const v = proj(E, qDim);
    const o = proj(qDim, E);
    q.set(slot(0, SLOW), CONST, 1);
    k.set(slot(0, SLOW), SEP, 1);
    v.set(slot(0, 0), SEP, 1);
    o.set(SEGMENT, slot(0, 0), 1);
    layers.push(
      ...layer(
        0,
        q.w,
        k.w,
        v.w,
        o.w,
        new Float32Array(E * 2 * D),
        new Float32Array(E * 2 * D),
        new Float32Array(2 * D * E),
      ),
    );
  }
  // Layer 1: the two segments' mean codes, then their dot product.
  {
    const q = proj(E, qDim);
    const k = proj(E, qDim);
    const v = proj(E, qDim);
    const o = proj(qDim, E);
    for (const [head, sign, out] of [
      [0, 1, A],
      [1, -1, B],
    ] as const) {
      q.set(slot(head, SLOW), CONST, 1);
      k.set(slot(head, SLOW), SEGMENT, sign);
      for (let j = 0; j < D; j++) {
        v.set(slot(head, j), L + j, 1);
        o.set(out + j, slot(head, j), 1);
      }
    }
    const gate = proj(E, 2 * D);
    const up = proj(E, 2 * D);
    const down = proj(2 * D, E);
    for (let j = 0; j < D; j++) {
      // silu(β + A_j)·B_j − silu(β)·B_j ≈ A_j·B_j (σ(β) = 1 − 3e-7).
      gate.set(j, CONST, BETA / C);
      gate.set(j, A + j, 1);
      up.set(j, B + j, 1);
      down.set(SCORE, j, 1);
      gate.set(D + j, CONST, BETA / C);
      up.set(D + j, B + j, 1);
      down.set(SCORE, D + j, -1);
    }
    layers.push(...layer(1, q.w, k.w, v.w, o.w, gate.w, up.w, down.w));
  }
  // The head: "yes" = κ·(score − τ), "no" = 0; the constant reads 1 after the output norm.
  const head = new Float32Array(E * 2);
  head[SCORE] = cal.gain;
  head[CONST] = (-cal.gain * cal.threshold) / C;

  return [
    t("token_embd.weight", [E, tok.pieces.length], embd),
    t("output_norm.weight", [E], ones(E)),
    ...layers,
    t("cls.output.weight", [E, 2], head),
  ];

  function layer(
    n: number,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    o: Float32Array,
    gate: Float32Array,
    up: Float32Array,
    down: Float32Array,
  ): GgufTensorInput[] {
    const b = `blk.${n}`;
    return [
      t(`${b}.attn_norm.weight`, [E], ones(E)),
      t(`${b}.attn_q.weight`, [E, qDim], q),
      t(`${b}.attn_k.weight`, [E, qDim], k),
      t(`${b}.attn_v.weight`, [E, qDim], v),
      t(`${b}.attn_output.weight`, [qDim, E], o),
      t(`${b}.attn_q_norm.weight`, [HEAD], new Float32Array(HEAD).fill(QK_GAIN)),
      t(`${b}.attn_k_norm.weight`, [HEAD], new Float32Array(HEAD).fill(QK_GAIN)),
      t(`${b}.ffn_norm.weight`, [E], ones(E)),
      t(`${b}.ffn_gate.weight`, [E, 2 * D], gate),
      t(`${b}.ffn_up.weight`, [E, 2 * D], up),
      t(`${b}.ffn_down.weight`, [2 * D, E], down),
    ];
  }
}

/** The metadata: a Qwen 3 reranker with the tiny model's tokenizer. */
export function rerankerMetadata(
  name: string,
  tokenizer: ReadonlyMap<string, GgufValue>,
  contextLength: number,
): GgufMetadata {
  const m: GgufMetadata = new Map<string, GgufValue>([
    ["general.architecture", gguf.string("qwen3")],
    ["general.name", gguf.string(name)],
    ["general.file_type", gguf.u32(1)],
    ["qwen3.context_length", gguf.u32(contextLength)],
    ["qwen3.embedding_length", gguf.u32(E)],
    ["qwen3.block_count", gguf.u32(2)],
    ["qwen3.feed_forward_length", gguf.u32(2 * D)],
    ["qwen3.attention.head_count", gguf.u32(HEADS)],
    ["qwen3.attention.head_count_kv", gguf.u32(HEADS)],
    ["qwen3.attention.key_length", gguf.u32(HEAD)],
    ["qwen3.attention.value_length", gguf.u32(HEAD)],
    ["qwen3.attention.layer_norm_rms_epsilon", gguf.f32(1e-6)],
    ["qwen3.rope.freq_base", gguf.f32(ROPE_BASE)],
    ["qwen3.pooling_type", gguf.u32(POOLING_RANK)],
    ["qwen3.classifier.output_labels", gguf.strings([...RERANK_LABELS])],
  ]);
  for (const [key, value] of tokenizer) if (key.startsWith("tokenizer.ggml.")) m.set(key, value);
  m.set("tokenizer.chat_template.rerank", gguf.string(RERANK_TEMPLATE));
  return m;
}

/** The facts whose questions calibrate it and test it: one clear reply each (greetings share
 * replies; counts are lists of the same numbers, told apart by their length only). */
export function rerankFacts(): Fact[] {
  return buildFacts().filter((f) => f.category !== "greeting" && f.category !== "counting");
}

/**
 * τ halfway between the mean overlap of relevant and of other pairs (each question's wordings
 * but the last, against its fact and against every other fact of its kind); κ so that a pair at
 * the relevant mean scores σ(4) ≈ 0.98.
 */
export function calibrate(codes: readonly Float32Array[], tok: Tokenizer): Calibration {
  const facts = rerankFacts();
  const replies = facts.map((f) => tok.tokenize(f.reply));
  let relevant = 0;
  let nRelevant = 0;
  let other = 0;
  let nOther = 0;
  facts.forEach((fact, i) => {
    for (const ask of fact.asks.slice(0, -1)) {
      const query = tok.tokenize(ask);
      facts.forEach((f, j) => {
        if (f.category !== fact.category) return;
        const s = overlap(codes, query, replies[j] as number[]);
        if (i === j) {
          relevant += s;
          nRelevant++;
        } else {
          other += s;
          nOther++;
        }
      });
    }
  });
  const meanRelevant = relevant / nRelevant;
  const meanOther = other / nOther;
  const threshold = (meanRelevant + meanOther) / 2;
  return { threshold, gain: 4 / (meanRelevant - threshold) };
}
