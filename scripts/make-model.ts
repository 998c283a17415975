// Makes the built-in tiny model from nothing: generated corpus → BPE vocabulary →
// random llama GGUF → llama-finetune → metadata repair → Q8_0/Q4_0 → model card.
//
//   npm run make-model                       # writes models/*.gguf and MODEL-CARD.md
//   npm run make-model -- --untrained PATH   # only the random F32 model, no tools needed
//
// Options: --seed N, --epochs N, --lr X, --out-dir DIR, --keep-f32 PATH, --threads N.
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { writeGguf } from "../src/engine/gguf.ts";
import {
  checkDims,
  type ModelDims,
  type ModelSpec,
  modelMetadata,
  modelTensors,
  parameterCount,
  parseHeadPlan,
} from "./model/architecture.ts";
import { encode, trainBpe, type Vocabulary } from "./model/bpe.ts";
import { CHAT_TEMPLATE } from "./model/chat-template.ts";
import { generateCorpus, renderTrainingText } from "./model/corpus.ts";
import { writeModelCard } from "./model/model-card.ts";
import { finetune, quantize, restoreMetadata } from "./model/pipeline.ts";
import { evaluate } from "./model/quality.ts";
import { CONTEXT_LENGTH, CONTROL_TOKENS, MODEL_NAME, MODELS_DIR, modelFile, SEED, VOCAB_SIZE } from "./model/recipe.ts";

function dims(nVocab: number): ModelDims {
  const nHead = Number(args.heads);
  return {
    nVocab,
    nEmbd: Number(args.embd),
    nLayer: Number(args.layers),
    nHead,
    nHeadKv: nHead, // no GQA: V is never trained, so it must keep every direction of its input
    nFf: Number(args.ff),
    contextLength: CONTEXT_LENGTH,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
  };
}

const { values: args } = parseArgs({
  options: {
    seed: { type: "string", default: String(SEED) },
    epochs: { type: "string", default: "8" },
    lr: { type: "string", default: "1e-3" },
    "lr-min": { type: "string", default: "1e-4" },
    "train-context": { type: "string", default: "256" },
    embd: { type: "string", default: "128" },
    layers: { type: "string", default: "4" },
    heads: { type: "string", default: "4" },
    ff: { type: "string", default: "512" },
    // Per layer (separated by "/"), per head: tokens back a head starts looking, or c(ontent).
    "residual-scale": { type: "string", default: "1.4" },
    attention: { type: "string", default: "1,2,3,c/1,2,4,c/1,3,c,c/c,c,c,c" },
    threads: { type: "string", default: String(Math.max(1, Math.min(availableParallelism(), 16))) },
    "out-dir": { type: "string" },
    "keep-f32": { type: "string" },
    untrained: { type: "string" },
  },
});

const seed = Number(args.seed);
const log = (msg: string) => console.log(`[make-model ${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}`);
const t0 = performance.now();

const corpus = generateCorpus(seed);
const text = renderTrainingText(corpus.train, { seed });
const vocab: Vocabulary = trainBpe([text], { vocabSize: VOCAB_SIZE, controlTokens: CONTROL_TOKENS });
const textTokens = encode(vocab, text, { parseSpecial: true, addBos: true }).length;
const spec: ModelSpec = {
  name: MODEL_NAME,
  dims: dims(vocab.tokens.length),
  vocab,
  chatTemplate: CHAT_TEMPLATE,
  seed,
  embeddingStd: 1.0,
  heads: parseHeadPlan(args.attention),
  residualScale: Number(args["residual-scale"]),
};
checkDims(spec.dims);
log(
  `corpus: ${corpus.train.length} dialogues, ${text.length} chars, ${textTokens} tokens; ${parameterCount(spec.dims)} parameters`,
);

if (args.untrained) {
  await writeGguf(args.untrained, modelMetadata(spec), modelTensors(spec));
  log(`wrote untrained ${args.untrained}`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "switchyard-make-model-"));
try {
  const untrained = join(work, "untrained.gguf");
  const trained = join(work, "trained.gguf");
  const f32 = args["keep-f32"] ?? join(work, "model-f32.gguf");
  const textFile = join(work, "train.txt");
  writeFileSync(textFile, text);
  await writeGguf(untrained, modelMetadata(spec), modelTensors(spec));
  log(`wrote untrained model (${(statSync(untrained).size / 1e6).toFixed(1)} MB)`);

  const threads = Number(args.threads);
  const training = {
    context: Number(args["train-context"]),
    epochs: Number(args.epochs),
    lr: Number(args.lr),
    lrMin: Number(args["lr-min"]),
    decayEpochs: Number(args.epochs),
    valSplit: 0.05,
    threads,
  };
  let lastProgress = 0;
  const result = await finetune({
    model: untrained,
    textFile,
    out: trained,
    ...training,
    onProgress: (line) => {
      if (performance.now() - lastProgress < 30_000) return;
      lastProgress = performance.now();
      log(line);
    },
    onEpoch: (e, r) =>
      log(
        `epoch ${e}: train loss ${r.train.loss.toFixed(3)} acc ${(r.train.accuracy * 100).toFixed(1)}%` +
          (r.val ? `, val loss ${r.val.loss.toFixed(3)} acc ${(r.val.accuracy * 100).toFixed(1)}%` : ""),
      ),
  });
  log(`trained in ${result.seconds.toFixed(0)} s`);

  await restoreMetadata(trained, f32, {
    chatTemplate: CHAT_TEMPLATE,
    contextLength: CONTEXT_LENGTH,
    fileType: 0,
    name: MODEL_NAME,
  });
  const outDir = args["out-dir"] ?? MODELS_DIR;
  mkdirSync(outDir, { recursive: true });
  const files = { q8_0: modelFile("q8_0", outDir), q4_0: modelFile("q4_0", outDir) };
  const sizes = {
    f32: statSync(f32).size,
    q8_0: await quantize(f32, files.q8_0, "Q8_0", threads),
    q4_0: await quantize(f32, files.q4_0, "Q4_0", threads),
  };
  log(`quantized: Q8_0 ${(sizes.q8_0 / 1e6).toFixed(2)} MB, Q4_0 ${(sizes.q4_0 / 1e6).toFixed(2)} MB`);

  const quality = {
    q8_0: await evaluate(files.q8_0, corpus.evalSet),
    q4_0: await evaluate(files.q4_0, corpus.evalSet),
  };
  log(
    `eval: Q8_0 ${quality.q8_0.right}/${quality.q8_0.items.length}, Q4_0 ${quality.q4_0.right}/${quality.q4_0.items.length} right`,
  );

  const argv = process.argv.slice(2);
  writeModelCard(join(outDir, "MODEL-CARD.md"), {
    command: `npm run make-model${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
    name: MODEL_NAME,
    seed,
    spec,
    parameters: parameterCount(spec.dims),
    corpus: { dialogues: corpus.train.length, chars: text.length, tokens: textTokens },
    training,
    result,
    files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, relative(outDir, v)])),
    sizes,
    quality,
    totalSeconds: (performance.now() - t0) / 1000,
  });
  log(`wrote ${join(outDir, "MODEL-CARD.md")}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
