import { describe, expect, it } from "vitest";
import {
  type ModelDims,
  type ModelSpec,
  modelTensors,
  parameterCount,
  parseHeadPlan,
  positionalQuery,
  positionalWeights,
  Rng,
} from "../../scripts/model/architecture.ts";
import { FinetuneLog } from "../../scripts/model/pipeline.ts";
import { isRight, spreadOver } from "../../scripts/model/quality.ts";

describe("FinetuneLog", () => {
  // Shaped like llama-finetune's stderr: an epoch header before every batch, progress
  // bars redrawn with \r, the first val line with ±nan, arbitrary chunk boundaries.
  const stderr = [
    "0.00.047 I -optimizer adamw -lr0 0.001 -epochs 2\n",
    "0.00.083 I epoch 0 lr=0.001\n",
    "train: [▏       ] data=0000001/0000002 loss=7.10000±0.10000 acc=1.00±0.10% t=00:00:00 ETA=00:00:01 \r",
    "0.00.995 I epoch 0 lr=0.001\n",
    "train: [███████▉] data=0000002/0000002 loss=6.50000±0.10000 acc=10.50±0.20% t=00:00:01 ETA=00:00:00 \r\n",
    "val:   [███▉    ] data=0000001/0000002 loss=6.40000±nan acc=11.00±2.00% t=00:00:00 ETA=00:00:00 \r",
    "val:   [███████▉] data=0000002/0000002 loss=6.30000±0.20000 acc=12.25±1.00% t=00:00:00 ETA=00:00:00 \r\n",
    "0.01.500 I epoch 1 lr=0.0005\n",
    "train: [███████▉] data=0000002/0000002 loss=4.25000±0.10000 acc=40.00±0.20% t=00:00:01 ETA=00:00:00 \r\n",
    "val:   [███████▉] data=0000002/0000002 loss=4.50000±0.20000 acc=38.00±1.00% t=00:00:00 ETA=00:00:00 \r\n",
    "0.02.000 I main: saving model",
  ].join("");

  it("reports each epoch's last train and val figures once", () => {
    const seen: number[] = [];
    const log = new FinetuneLog((e) => seen.push(e));
    for (let i = 0; i < stderr.length; i += 37) log.push(stderr.slice(i, i + 37));
    log.end();
    expect(seen).toEqual([0, 1]);
    expect(log.epochs).toEqual([
      { train: { loss: 6.5, accuracy: 0.105 }, val: { loss: 6.3, accuracy: 0.1225 } },
      { train: { loss: 4.25, accuracy: 0.4 }, val: { loss: 4.5, accuracy: 0.38 } },
    ]);
  });
});

describe("isRight", () => {
  it("needs the expected text as a whole token", () => {
    expect(isRight("3 plus 4 is 7.", "7")).toBe(true);
    expect(isRight("3 plus 4 is 17.", "7")).toBe(false);
    expect(isRight("The capital of France is Paris.", "Paris")).toBe(true);
    expect(isRight("Parisian", "Paris")).toBe(false);
    expect(isRight('{"answer": "Tokyo"}', '"Tokyo"')).toBe(true);
    expect(isRight("c-a-t", "c-a-t")).toBe(true);
    expect(isRight("c-a-t-s", "c-a-t")).toBe(false);
  });
});

describe("spreadOver", () => {
  it("takes categories in turn", () => {
    const items = ["a1", "a2", "a3", "b1", "c1", "c2"].map((id) => ({ id, category: id[0] as string }));
    expect(spreadOver(items, 5).map((i) => i.id)).toEqual(["a1", "b1", "c1", "a2", "c2"]);
    expect(spreadOver(items, 10)).toHaveLength(6);
  });
});

describe("architecture", () => {
  const dims: ModelDims = {
    nVocab: 320,
    nEmbd: 64,
    nLayer: 2,
    nHead: 4,
    nHeadKv: 4,
    headDim: 16,
    nFf: 96,
    contextLength: 128,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
  };
  const spec = (seed: number): ModelSpec => ({
    name: "t",
    dims,
    seed,
    embeddingStd: 1,
    heads: parseHeadPlan("1,2,4-9,c/c,c,c,c"),
    residualScale: 1,
    chatTemplate: "",
    vocab: { tokens: [], scores: [], types: [], unkId: 0, bosId: 1, eosId: 2, addSpacePrefix: false },
  });

  it("makes the tensors llama.cpp expects, with the counted parameters", () => {
    const tensors = modelTensors(spec(1));
    expect(tensors).toHaveLength(3 + 9 * dims.nLayer);
    expect(tensors.reduce((n, t) => n + t.data.length, 0)).toBe(parameterCount(dims));
    expect(tensors.find((t) => t.name === "blk.1.attn_k.weight")?.dims).toEqual([64, 64]);
    expect(tensors.find((t) => t.name === "blk.0.ffn_down.weight")?.dims).toEqual([96, 64]);
  });

  it("is deterministic for a seed", () => {
    const a = modelTensors(spec(7))[0]?.data;
    expect(modelTensors(spec(7))[0]?.data).toEqual(a);
    expect(modelTensors(spec(8))[0]?.data).not.toEqual(a);
    // Embeddings never train: each is a random vector of the planned scale plus one
    // component shared by all tokens, which positional heads' keys read.
    const e = a ?? new Float32Array();
    const n = dims.nEmbd;
    const mean = Array.from({ length: n }, (_, i) => {
      let sum = 0;
      for (let tok = 0; tok < dims.nVocab; tok++) sum += e[tok * n + i] ?? 0;
      return sum / dims.nVocab;
    });
    const rms = (xs: ArrayLike<number>) => Math.sqrt(Array.from(xs).reduce((s, x) => s + x * x, 0) / xs.length);
    expect(rms(mean)).toBeGreaterThan(0.9);
    expect(rms(mean)).toBeLessThan(1.1);
    const centred = Array.from(e, (x, i) => x - (mean[i % n] ?? 0));
    expect(rms(centred)).toBeGreaterThan(0.95);
    expect(rms(centred)).toBeLessThan(1.05);
  });

  it("parses head plans", () => {
    expect(parseHeadPlan("1,3-8,c/c")).toEqual([[{ from: 1, to: 1 }, { from: 3, to: 8 }, "content"], ["content"]]);
    expect(() => parseHeadPlan("1,x")).toThrow(/bad head plan/);
    expect(() => parseHeadPlan("5-2")).toThrow(/bad head plan/);
  });

  // Keys never train, so these shapes are what the model attends with: they must hold
  // at any distance the server may run the model at, not only the training window.
  it("shapes positional heads to attend where planned, at every context length", () => {
    for (const headDim of [16, 32]) {
      for (const offset of [0, 1, 2, 5]) {
        const w = positionalWeights(
          positionalQuery({ from: offset, to: offset }, headDim, 10000),
          headDim,
          10000,
          4096,
        );
        expect(w[offset]).toBeGreaterThan(0.98);
      }
    }
    const w = positionalWeights(positionalQuery({ from: 6, to: 16 }, 32, 10000), 32, 10000, 4096);
    expect(w.slice(6, 17).reduce((a, b) => a + b, 0)).toBeGreaterThan(0.9);
    expect(Math.max(...w)).toBeLessThan(0.3); // spread over the window, not one token
  });

  it("draws uniform values in range", () => {
    const rng = new Rng(3);
    const xs = Array.from({ length: 10_000 }, () => rng.next());
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
    expect(xs.reduce((a, b) => a + b, 0) / xs.length).toBeCloseTo(0.5, 1);
  });
});
