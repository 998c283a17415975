// The training estimate is a pure function of the model's shape and the window.
import { describe, expect, it } from "vitest";
import type { GgufFile, GgufValue } from "../../src/engine/gguf.ts";
import {
  type Calibration,
  epochSeconds,
  estimateTraining,
  formatDuration,
  type ModelShape,
  modelShape,
} from "../../src/finetune/estimate.ts";

const u32 = (value: number): GgufValue => ({ type: "u32", value });

/** A llama GGUF's header as readGguf returns it (no data needed). */
function llamaFile(d: { vocab: number; embd: number; layers: number; heads: number; kvHeads: number; ff: number }) {
  const kv = (d.embd / d.heads) * d.kvHeads;
  const tensors: GgufFile["tensors"] = [
    { name: "token_embd.weight", dims: [d.embd, d.vocab], type: 8, offset: 0 },
    { name: "output_norm.weight", dims: [d.embd], type: 0, offset: 0 },
    { name: "output.weight", dims: [d.embd, d.vocab], type: 8, offset: 0 },
  ];
  for (let i = 0; i < d.layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [d.embd], type: 0, offset: 0 },
      { name: `blk.${i}.attn_q.weight`, dims: [d.embd, d.embd], type: 8, offset: 0 },
      { name: `blk.${i}.attn_k.weight`, dims: [d.embd, kv], type: 8, offset: 0 },
      { name: `blk.${i}.attn_v.weight`, dims: [d.embd, kv], type: 8, offset: 0 },
      { name: `blk.${i}.attn_output.weight`, dims: [d.embd, d.embd], type: 8, offset: 0 },
      { name: `blk.${i}.ffn_norm.weight`, dims: [d.embd], type: 0, offset: 0 },
      { name: `blk.${i}.ffn_gate.weight`, dims: [d.embd, d.ff], type: 8, offset: 0 },
      { name: `blk.${i}.ffn_up.weight`, dims: [d.embd, d.ff], type: 8, offset: 0 },
      { name: `blk.${i}.ffn_down.weight`, dims: [d.ff, d.embd], type: 8, offset: 0 },
    );
  }
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["llama.embedding_length", u32(d.embd)],
    ["llama.block_count", u32(d.layers)],
    ["llama.feed_forward_length", u32(d.ff)],
    ["llama.attention.head_count", u32(d.heads)],
    ["llama.attention.head_count_kv", u32(d.kvHeads)],
  ]);
  return { version: 3, metadata, tensors, alignment: 32, dataOffset: 0 } satisfies GgufFile;
}

const QWEN_05B_BODY = { vocab: 1280, embd: 896, layers: 24, heads: 14, kvHeads: 2, ff: 4864 };
const GPT2_SMALL_BODY = { vocab: 1280, embd: 768, layers: 12, heads: 12, kvHeads: 12, ff: 3072 };

describe("modelShape", () => {
  it("counts every weight, and all but the token embeddings as trainable", () => {
    const shape = modelShape(llamaFile(QWEN_05B_BODY));
    const layer = 2 * 896 + 2 * 896 * 896 + 2 * 896 * 128 + 3 * 896 * 4864;
    expect(shape.parameters).toBe(2 * 1280 * 896 + 896 + 24 * layer);
    expect(shape.trainableParameters).toBe(shape.parameters - 1280 * 896);
    expect(shape).toMatchObject({ nLayer: 24, nEmbd: 896, nFf: 4864, nHead: 14, nHeadKv: 2, nVocab: 1280 });
  });
});

describe("estimateTraining", () => {
  const shape = modelShape(llamaFile(GPT2_SMALL_BODY));
  const at = (window: number, threads = 2, s: ModelShape = shape) => estimateTraining(s, { window, threads });

  it("F32 weights, a gradient and AdamW's two moments per trainable weight", () => {
    const e = at(256);
    expect(e.memory.weights).toBe(4 * shape.parameters);
    expect(e.memory.gradients).toBe(4 * shape.trainableParameters);
    expect(e.memory.optimizer).toBe(8 * shape.trainableParameters);
    expect(e.memory.total).toBe(
      e.memory.weights + e.memory.gradients + e.memory.optimizer + e.memory.activations + e.memory.overhead,
    );
  });

  it("activations grow with the window, faster than linearly (attention scores), and only they do", () => {
    const [a, b, c] = [at(128), at(256), at(512)];
    expect(b.memory.weights).toBe(a.memory.weights);
    expect(b.memory.activations).toBeGreaterThan(2 * a.memory.activations);
    expect(c.memory.activations).toBeGreaterThan(2 * b.memory.activations);
  });

  it("grouped-query attention needs less than full attention at the same width", () => {
    const full = modelShape(llamaFile({ ...QWEN_05B_BODY, kvHeads: 14 }));
    const gqa = modelShape(llamaFile(QWEN_05B_BODY));
    expect(at(256, 2, gqa).memory.total).toBeLessThan(at(256, 2, full).memory.total);
  });

  it("time: 6 FLOPs per trainable weight per token plus attention, shared out over the threads", () => {
    const cal: Calibration = {
      flopsPerThread: 1e9,
      activation: { e: 0, kv: 0, f: 0, s: 0 },
      logitCopies: 0,
      overheadBytes: 0,
      windowOverheadSeconds: 0,
    };
    const one = estimateTraining(shape, { window: 256, threads: 1 }, cal);
    expect(one.flopsPerToken).toBe(6 * shape.trainableParameters + 3 * 2 * 12 * 768 * 256);
    expect(one.tokensPerSecond).toBeCloseTo(1e9 / one.flopsPerToken);
    const slow = estimateTraining(shape, { window: 256, threads: 1 }, { ...cal, windowOverheadSeconds: 2 });
    expect(slow.secondsPerWindow).toBeCloseTo(one.secondsPerWindow + 2);
    const two = estimateTraining(shape, { window: 256, threads: 2 }, cal);
    expect(two.secondsPerWindow).toBeCloseTo(one.secondsPerWindow / 2);
    // Validation windows are forward passes only: a third of a training window.
    expect(epochSeconds(one, 10, 3)).toBeCloseTo(one.secondsPerWindow * 11);
  });

  it("a bigger model costs more of everything", () => {
    const small = at(256);
    const big = at(256, 2, modelShape(llamaFile(QWEN_05B_BODY)));
    expect(big.memory.total).toBeGreaterThan(small.memory.total);
    expect(big.secondsPerWindow).toBeGreaterThan(small.secondsPerWindow);
  });
});

describe("formatDuration", () => {
  it("reads as people say it", () => {
    expect(formatDuration(0.2)).toBe("~1 s");
    expect(formatDuration(42)).toBe("~42 s");
    expect(formatDuration(600)).toBe("~10 min");
    expect(formatDuration(3 * 3600)).toBe("~3.0 h");
  });
});

describe("CPU_CALIBRATION", () => {
  // Peak RSS of llama-finetune (/usr/bin/time -v, 2 threads, -c 256) on the two bench shapes
  // (the tiny tokenizer: 1,280 tokens), measured on this project's 2-core machine.
  const measured = [
    { shape: GPT2_SMALL_BODY, peakBytes: 2_081_944 * 1024 },
    { shape: QWEN_05B_BODY, peakBytes: 6_297_772 * 1024 },
  ];
  it.each(measured)("estimates the measured peak memory within 10% ($peakBytes bytes)", ({ shape, peakBytes }) => {
    const e = estimateTraining(modelShape(llamaFile(shape)), { window: 256, threads: 2 });
    expect(e.memory.total / peakBytes).toBeGreaterThan(0.9);
    expect(e.memory.total / peakBytes).toBeLessThan(1.1);
  });
});
