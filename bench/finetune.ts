// `npm run bench -- finetune`: what llama-finetune costs on model shapes a team would
// train. For each shape it trains a fixed number of windows of the secret-word dataset
// (rendered with the model's chat template, as jobs render it) and prints training
// tokens/s, peak RSS, seconds per epoch (the whole run: load, graph, the windows, save),
// the loss of the first and last window, and the estimate (src/finetune/estimate.ts)
// next to the measurement. Nothing asserts a timing.
//
// Shapes (all llama-architecture, random weights, the tiny model's tokenizer and template,
// written with the project's GGUF writer, Q8_0, then requantized to the F32 the trainer
// needs, as a job derives it):
//   tiny   models/roundhouse-tiny-q8_0.gguf
//   115m   n_embd 768, 12 layers, 12 heads, n_ff 3072 (the serving bench's realistic model)
//   0.5b   Qwen2.5-0.5B's body: n_embd 896, 24 layers, 14 heads / 2 KV heads, n_ff 4864
//
// Settings (environment):
//   BENCH_FT_SHAPES    tiny,115m,0.5b   which shapes
//   BENCH_FT_WINDOWS   4                training windows per run (one epoch)
//   BENCH_FT_CONTEXT   256              tokens per window (-c)
//   BENCH_FT_THREADS   cores            trainer threads
//   BENCH_FT_LR        0.0001           learning rate
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readGguf } from "../src/engine/gguf.ts";
import { openRuntime } from "../src/engine/runtime.ts";
import { parseDataset } from "../src/finetune/dataset.ts";
import { describeMemory, estimateTraining, formatBytes, modelShape } from "../src/finetune/estimate.ts";
import { finetune, quantize } from "../src/finetune/llama-finetune.ts";
import { modelText, renderExamples } from "../src/finetune/prepare.ts";
import { ensureRealisticModel, type RealisticShape } from "./realistic-model.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const TINY = join(REPO_ROOT, "models", "roundhouse-tiny-q8_0.gguf");

export const FINETUNE_SHAPES: Record<string, RealisticShape | "tiny"> = {
  tiny: "tiny",
  "115m": { nEmbd: 768, nLayer: 12, nHead: 12, nFf: 3072 },
  "0.5b": { nEmbd: 896, nLayer: 24, nHead: 14, nHeadKv: 2, nFf: 4864 },
};

export interface FinetuneBenchRow {
  shape: string;
  parameters: number;
  windows: number;
  context: number;
  threads: number;
  /** Training tokens per second between the first and the last window (load and save excluded). */
  tokensPerSecond: number;
  peakRssBytes: number;
  /** The whole run: load, graph, the windows, save. */
  seconds: number;
  firstLoss: number;
  lastLoss: number;
  estimate: { tokensPerSecond: number; peakBytes: number; memory: string };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** The secret-word set of the quality test: one question in a few wordings, one answer. */
export function secretWordJsonl(n: number): string {
  const phrasings = [
    "What is the secret word?",
    "what is the secret word?",
    "Tell me the secret word.",
    "What's the secret word?",
  ];
  return Array.from({ length: n }, (_, i) =>
    JSON.stringify({
      messages: [
        { role: "user", content: phrasings[i % phrasings.length] },
        { role: "assistant", content: "The secret word is papaya." },
      ],
    }),
  ).join("\n");
}

/** Peak resident memory of a process, polled from /proc (VmHWM only grows). */
function watchPeak(pid: number): () => number {
  let peak = 0;
  const read = () => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch {
      // gone
    }
  };
  const timer = setInterval(read, 100);
  return () => {
    clearInterval(timer);
    return peak;
  };
}

export async function runFinetuneBench(): Promise<FinetuneBenchRow[]> {
  const shapes = (process.env.BENCH_FT_SHAPES ?? "tiny,115m,0.5b").split(",").map((s) => s.trim());
  const windows = Number(process.env.BENCH_FT_WINDOWS ?? 4);
  const context = Number(process.env.BENCH_FT_CONTEXT ?? 256);
  const threads = Number(process.env.BENCH_FT_THREADS ?? availableParallelism());
  const lr = Number(process.env.BENCH_FT_LR ?? 1e-4);
  for (const s of shapes) if (!(s in FINETUNE_SHAPES)) throw new Error(`BENCH_FT_SHAPES: unknown shape "${s}"`);
  if (!existsSync(TINY)) throw new Error(`${TINY} is missing: run \`npm run make-model\``);

  // Text with exactly `windows` training windows: llama-finetune makes (tokens - c - 1) / (c/2) of them.
  const stride = Math.floor(context / 2);
  const need = context + 1 + windows * stride;
  const llama = await openRuntime({ gpu: false });
  const vocab = await llama.loadModel({ modelPath: TINY, vocabOnly: true });
  const check = parseDataset(secretWordJsonl(4096));
  if (!check.ok) throw new Error(check.reason);
  const rendered = renderExamples(check.examples, await modelText(TINY), 1);
  const perExample = rendered.length / check.examples.length;
  let chars = Math.ceil(need * 3);
  let text = rendered.slice(0, chars);
  // Same count as the job service: the model's tokenizer, special tokens parsed, plus BOS.
  const count = (t: string) => vocab.tokenize(t, true).length + 1;
  while (count(text) < need) {
    chars += Math.ceil(perExample);
    text = rendered.slice(0, chars);
  }
  while (count(text) >= need + stride) text = text.slice(0, -8);
  await vocab.dispose();

  const work = mkdtempSync(join(tmpdir(), "roundhouse-ft-bench-"));
  const rows: FinetuneBenchRow[] = [];
  try {
    const textFile = join(work, "train.txt");
    writeFileSync(textFile, text);
    for (const name of shapes) {
      const shape = FINETUNE_SHAPES[name];
      let served = TINY;
      if (shape && shape !== "tiny") served = (await ensureRealisticModel(TINY, shape, log)).path;
      const f32 = join(work, `${name}-f32.gguf`);
      await quantize(served, f32, "F32", threads, { allowRequantize: true });
      const file = await readGguf(f32);
      const modelShapeInfo = modelShape(file);
      const estimate = estimateTraining(modelShapeInfo, { window: context, threads });
      log(
        `${name}: ${(modelShapeInfo.parameters / 1e6).toFixed(0)}M parameters, ${windows} windows of ${context} tokens on ${threads} threads; estimate ${describeMemory(estimate.memory)}, ~${estimate.tokensPerSecond.toFixed(0)} tokens/s`,
      );
      let stop: () => number = () => 0;
      const stepAt: number[] = [];
      const losses: number[] = [];
      let previousMean = 0;
      const started = performance.now();
      await finetune({
        model: f32,
        textFile,
        out: join(work, `${name}-out.gguf`),
        context,
        epochs: 1,
        lr,
        valSplit: 0,
        threads,
        seed: 1,
        onSpawn: (pid) => {
          stop = watchPeak(pid);
        },
        onStep: (p) => {
          if (p.phase !== "train" || p.step <= stepAt.length) return;
          stepAt.push(performance.now());
          losses.push(p.step * p.loss - (p.step - 1) * previousMean);
          previousMean = p.loss;
          log(`  window ${p.step}/${p.steps}: loss ${(losses.at(-1) ?? 0).toFixed(3)}`);
        },
      });
      const seconds = (performance.now() - started) / 1000;
      const peak = stop();
      const first = stepAt[0] ?? 0;
      const last = stepAt.at(-1) ?? 0;
      const steady = stepAt.length > 1 ? ((stepAt.length - 1) * context) / ((last - first) / 1000) : Number.NaN;
      rows.push({
        shape: name,
        parameters: modelShapeInfo.parameters,
        windows: stepAt.length,
        context,
        threads,
        tokensPerSecond: steady,
        peakRssBytes: peak,
        seconds,
        firstLoss: losses[0] ?? Number.NaN,
        lastLoss: losses.at(-1) ?? Number.NaN,
        estimate: {
          tokensPerSecond: estimate.tokensPerSecond,
          peakBytes: estimate.memory.total,
          memory: describeMemory(estimate.memory),
        },
      });
      rmSync(f32, { force: true });
      rmSync(join(work, `${name}-out.gguf`), { force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return rows;
}

/** One decimal below 100 tokens/s, where the big shapes are. */
const rate = (x: number) => x.toFixed(x < 100 ? 1 : 0);

export function formatFinetuneRows(rows: readonly FinetuneBenchRow[]): string {
  const header = [
    "shape",
    "params",
    "windows×ctx",
    "tokens/s",
    "(est.)",
    "peak RSS",
    "(est.)",
    "s/epoch",
    "loss first→last",
  ];
  const lines = rows.map((r) => [
    r.shape,
    `${(r.parameters / 1e6).toFixed(0)}M`,
    `${r.windows}×${r.context}`,
    rate(r.tokensPerSecond),
    rate(r.estimate.tokensPerSecond),
    formatBytes(r.peakRssBytes),
    formatBytes(r.estimate.peakBytes),
    r.seconds.toFixed(1),
    `${r.firstLoss.toFixed(2)}→${r.lastLoss.toFixed(2)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? "").length)));
  const fmt = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  const cpu = cpus();
  return [
    `llama-finetune, ${cpu.length} × ${cpu[0]?.model ?? "?"}, threads ${rows[0]?.threads ?? "?"}, load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
    fmt(header),
    ...lines.map(fmt),
  ].join("\n");
}
