// `npm run bench -- flash-attention`: what flash attention costs or saves on this machine, the
// figures behind `flash_attention: auto` (src/engine/flash-attention.ts). For each model shape, a
// sequence holding HELD tokens computes k more (the chunk a new question or a returning user's
// turn is), with and without flash attention, in alternating order; k = 1 is a generated token.
// In-process on node-llama-cpp, one context per setting, so only attention differs.
// Nothing asserts a timing.
//
// Settings (environment):
//   BENCH_FA_SHAPES   tiny,768x12x12   the tiny model and/or shapes n_embd x n_layer x n_head
//                                      (random weights, bench/realistic-model.ts; the head size is
//                                      n_embd / n_head)
//   BENCH_FA_HELD     200,1100         tokens the sequence holds before the chunk
//   BENCH_FA_TOKENS   1,8,32,48,64,128 chunk sizes
//   BENCH_FA_RUNS     5                runs per cell (the median is printed); the defaults take
//                                      about 4 minutes on 2 cores
//   BENCH_FA_THREADS  1
import { fileURLToPath } from "node:url";
import {
  getLlama,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
  readGgufFileInfo,
  type Token,
} from "node-llama-cpp";
import { headSize } from "../src/engine/flash-attention.ts";
import { ensureRealisticModel } from "./realistic-model.ts";

const TINY = fileURLToPath(new URL("../models/roundhouse-tiny-q8_0.gguf", import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);

export interface FlashAttentionRow {
  shape: string;
  headSize: number;
  held: number;
  tokens: number;
  /** Median milliseconds to compute the chunk. */
  withoutMs: number;
  withMs: number;
}

const list = (name: string, fallback: string) =>
  (process.env[name] ?? fallback)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

function ints(name: string, fallback: string): number[] {
  const values = list(name, fallback).map(Number);
  for (const v of values) if (!Number.isInteger(v) || v < 1) throw new Error(`${name}: expected positive integers`);
  return values;
}

async function modelFor(shape: string): Promise<{ path: string; headSize: number }> {
  let path = TINY;
  if (shape !== "tiny") {
    const [nEmbd, nLayer, nHead] = shape.split("x").map(Number);
    if (!nEmbd || !nLayer || !nHead) throw new Error(`BENCH_FA_SHAPES: "${shape}" is not n_embd x n_layer x n_head`);
    path = (await ensureRealisticModel(TINY, { nEmbd, nLayer, nHead, nFf: nEmbd * 4 }, log)).path;
  }
  // As the server reads it (the rule in src/engine/flash-attention.ts).
  return { path, headSize: headSize((await readGgufFileInfo(path)).architectureMetadata) ?? Number.NaN };
}

/** Milliseconds for `sequence`, holding `prefix`, to compute `chunk` and sample after it. */
async function chunkMs(sequence: LlamaContextSequence, prefix: Token[], chunk: Token[]): Promise<number> {
  await sequence.clearHistory();
  if (prefix.length > 0) await sequence.evaluateWithoutGeneratingNewTokens(prefix);
  const started = performance.now();
  for await (const _ of sequence.evaluate(chunk, { temperature: 0 })) break;
  return performance.now() - started;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

export async function runFlashAttentionBench(): Promise<FlashAttentionRow[]> {
  const shapes = list("BENCH_FA_SHAPES", "tiny,768x12x12");
  const helds = ints("BENCH_FA_HELD", "200,1100");
  const sizes = ints("BENCH_FA_TOKENS", "1,8,32,48,64,128");
  const runs = ints("BENCH_FA_RUNS", "5")[0] ?? 5;
  const threads = ints("BENCH_FA_THREADS", "1")[0] ?? 1;
  const contextSize = Math.max(...helds) + Math.max(...sizes) + 16;
  const llama = await getLlama({ gpu: "auto", build: "never", logLevel: LlamaLogLevel.error, maxThreads: 0 });
  const rows: FlashAttentionRow[] = [];
  for (const shape of shapes) {
    const { path, headSize } = await modelFor(shape);
    log(`${shape} (head size ${headSize}): ${helds.join(", ")} tokens held, chunks of ${sizes.join(", ")} …`);
    const models: LlamaModel[] = [];
    const sequences: LlamaContextSequence[] = [];
    for (const flashAttention of [false, true]) {
      const model = await llama.loadModel({ modelPath: path, defaultContextFlashAttention: flashAttention });
      const context = await model.createContext({ contextSize, sequences: 1, threads, flashAttention });
      models.push(model);
      sequences.push(context.getSequence());
    }
    const [without, withIt] = sequences as [LlamaContextSequence, LlamaContextSequence];
    // Text the model's tokenizer turns into enough tokens, the same for both contexts.
    const words = "the quick brown fox jumps over the lazy dog and runs into the forest where it meets a bear ";
    let tokens = (models[0] as LlamaModel).tokenize(words);
    while (tokens.length < contextSize) tokens = [...tokens, ...tokens];
    for (const held of helds) {
      for (const size of sizes) {
        const prefix = tokens.slice(0, held);
        const chunk = tokens.slice(held, held + size);
        const a: number[] = [];
        const b: number[] = [];
        for (let r = 0; r < runs; r++) {
          // Alternating order, so a slow stretch of the machine hits both.
          if (r % 2 === 0) {
            a.push(await chunkMs(without, prefix, chunk));
            b.push(await chunkMs(withIt, prefix, chunk));
          } else {
            b.push(await chunkMs(withIt, prefix, chunk));
            a.push(await chunkMs(without, prefix, chunk));
          }
        }
        rows.push({ shape, headSize, held, tokens: size, withoutMs: median(a), withMs: median(b) });
      }
    }
    for (const m of models) await m.dispose();
  }
  await llama.dispose();
  return rows;
}

export function formatFlashAttention(rows: readonly FlashAttentionRow[]): string {
  const lines = ["shape | head size | tokens held | chunk | without (ms) | with (ms) | with ÷ without"];
  for (const r of rows) {
    lines.push(
      `${r.shape} | ${r.headSize} | ${r.held} | ${r.tokens} | ${r.withoutMs.toFixed(2)} | ${r.withMs.toFixed(2)} | ${(r.withMs / r.withoutMs).toFixed(2)}×`,
    );
  }
  return lines.join("\n");
}
