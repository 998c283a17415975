// The part `make-tools-model` and `make-think-model` share: the built-in tiny model, with whole
// tokens added to its vocabulary (added-tokens.ts), fine-tuned by llama-finetune on dialogues
// already rendered with a chat template, given that template, and quantized to Q8_0.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { addTokens } from "./added-tokens.ts";
import { finetune, quantize, restoreMetadata } from "./pipeline.ts";
import { CONTEXT_LENGTH, modelFile } from "./recipe.ts";

/** The scripts' command line: --epochs, --lr, --repeats, --threads, --out; and a timed log. */
export function chatModelArgs(script: string, defaults: { repeats: number; out: string }) {
  const { values } = parseArgs({
    options: {
      epochs: { type: "string", default: "16" },
      lr: { type: "string", default: "0.0003" },
      repeats: { type: "string", default: String(defaults.repeats) },
      threads: { type: "string", default: String(Math.max(1, availableParallelism())) },
      out: { type: "string", default: defaults.out },
    },
  });
  const t0 = performance.now();
  return {
    epochs: Number(values.epochs),
    lr: Number(values.lr),
    repeats: Number(values.repeats),
    threads: Number(values.threads),
    out: values.out as string,
    log: (msg: string) => console.log(`[${script} ${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}`),
  };
}

/** `repeats` passes over the dialogues, each in a fixed rotation: every one follows a different one each time. */
export function rotated<T>(all: readonly T[], repeats: number): T[] {
  const out: T[] = [];
  for (let r = 0; r < repeats; r++) {
    for (let i = 0; i < all.length; i++) {
      const d = all[(i * (r + 1) + r) % all.length] ?? all[i];
      if (d !== undefined) out.push(d);
    }
  }
  return out;
}

export interface ChatModelRecipe {
  name: string;
  chatTemplate: string;
  addedTokens: readonly string[];
  /** Seed of the added tokens' embeddings and output rows. */
  seed: number;
  /** The training text: rendered dialogues, one after another. */
  texts: readonly string[];
  epochs: number;
  lr: number;
  threads: number;
  out: string;
  log: (line: string) => void;
}

export async function makeChatModel(r: ChatModelRecipe): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), `${r.name}-`));
  try {
    const base = join(work, "base-f32.gguf");
    const plain = join(work, "plain-f32.gguf");
    await quantize(modelFile("q8_0"), plain, "F32", r.threads, { allowRequantize: true });
    await addTokens(plain, base, r.addedTokens, r.seed);
    const textFile = join(work, "train.txt");
    const text = r.texts.join("");
    writeFileSync(textFile, text);
    r.log(`${r.texts.length} dialogues, ${text.length} characters`);
    const trained = join(work, "trained.gguf");
    const result = await finetune({
      model: base,
      textFile,
      out: trained,
      context: 32,
      epochs: r.epochs,
      lr: r.lr,
      lrMin: 1e-5,
      decayEpochs: r.epochs,
      valSplit: 0.05,
      threads: r.threads,
      onEpoch: (e, res) =>
        r.log(`epoch ${e}: train loss ${res.train.loss.toFixed(3)} acc ${(res.train.accuracy * 100).toFixed(1)}%`),
    });
    r.log(`trained in ${result.seconds.toFixed(0)} s`);
    const f32 = join(work, "final-f32.gguf");
    await restoreMetadata(trained, f32, {
      chatTemplate: r.chatTemplate,
      contextLength: CONTEXT_LENGTH,
      fileType: 0,
      name: r.name,
    });
    const size = await quantize(f32, r.out, "Q8_0", r.threads);
    r.log(`wrote ${r.out} (${(size / 1e6).toFixed(2)} MB)`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
