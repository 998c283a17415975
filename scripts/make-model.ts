// Makes the built-in tiny model from nothing: generated corpus → BPE vocabulary →
// initial llama GGUF → llama-finetune → metadata repair → Q8_0/Q4_0 → model card.
//
//   npm run make-model                       # writes models/*.gguf and models/MODEL-CARD.md
//   npm run make-model -- --untrained PATH   # only the untrained F32 model (no llama.cpp tools)
//   npm run make-model -- --epochs 4 --out-dir /tmp/try   # an experiment: any RECIPE field
//
// Other flags: --seed N, --threads N, --keep-f32 PATH.

import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { writeGguf } from "../src/engine/gguf.ts";
import {
  checkDims,
  type ModelSpec,
  modelMetadata,
  modelTensors,
  parameterCount,
  parseHeadPlan,
} from "./model/architecture.ts";
import { encode, trainBpe } from "./model/bpe.ts";
import { CHAT_TEMPLATE } from "./model/chat-template.ts";
import { generateCorpus, renderTrainingText } from "./model/corpus.ts";
import { embeddingModelFile, writeEmbeddingModel } from "./model/embedding-model.ts";
import { semanticVectors } from "./model/embeddings.ts";
import { writeModelCard } from "./model/model-card.ts";
import { packDialogues } from "./model/packing.ts";
import { finetune, quantize, restoreMetadata } from "./model/pipeline.ts";
import { evaluate } from "./model/quality.ts";
import {
  CONTEXT_LENGTH,
  CONTROL_TOKENS,
  MODEL_NAME,
  MODELS_DIR,
  modelFile,
  RECIPE,
  type Recipe,
  SEED,
  VOCAB_SIZE,
} from "./model/recipe.ts";

const recipeFlags = Object.fromEntries(
  Object.entries(RECIPE).map(([k, v]) => [k, { type: "string" as const, default: String(v) }]),
);
const { values: args } = parseArgs({
  options: {
    ...recipeFlags,
    seed: { type: "string", default: String(SEED) },
    // ggml's worker threads spin: more threads than cores makes training crawl.
    threads: { type: "string", default: String(Math.max(1, availableParallelism())) },
    "out-dir": { type: "string" },
    "keep-f32": { type: "string" },
    untrained: { type: "string" },
  },
});
const flag = (name: string): string | undefined => (args as Record<string, string | undefined>)[name];
const recipe = Object.fromEntries(
  Object.entries(RECIPE).map(([k, v]) => [k, typeof v === "number" ? Number(flag(k)) : flag(k)]),
) as unknown as Recipe;
const seed = Number(args.seed);
const threads = Number(args.threads);

const t0 = performance.now();
const log = (msg: string) => console.log(`[make-model ${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

const corpus = generateCorpus(seed, { repeats: recipe.repeats });
const plainText = renderTrainingText(corpus.train, { seed });
const vocab = trainBpe([plainText], { vocabSize: VOCAB_SIZE, controlTokens: CONTROL_TOKENS });
const textIds = encode(vocab, plainText, { parseSpecial: true, addBos: true });
// llama.cpp rounds a context up to a multiple of 256, so llama-finetune's windows are
// that long whatever -c says, stepping half of it; -c (= -b = -ub) only sets how many
// tokens each optimizer step takes, in order, within a window.
const trainWindow = Math.ceil(recipe.trainContext / 256) * 256;
const packed = packDialogues(corpus.train, vocab, trainWindow / 2, seed);
const spec: ModelSpec = {
  name: MODEL_NAME,
  dims: {
    nVocab: vocab.tokens.length,
    nEmbd: recipe.nEmbd,
    nLayer: recipe.nLayer,
    nHead: recipe.nHead,
    nHeadKv: recipe.nHead, // positional heads need a key head of their own
    headDim: recipe.headDim,
    nFf: recipe.nFf,
    contextLength: CONTEXT_LENGTH,
    ropeFreqBase: 10000,
    rmsEps: 1e-5,
  },
  vocab,
  chatTemplate: CHAT_TEMPLATE,
  seed,
  embeddingStd: 1,
  heads: parseHeadPlan(recipe.attention),
  residualScale: recipe.residualScale,
  semantic: {
    vectors: semanticVectors(textIds, vocab.tokens.length, recipe.semanticDims, seed),
    dims: recipe.semanticDims,
    scale: recipe.semanticScale,
  },
};
checkDims(spec.dims);
const parameters = parameterCount(spec.dims);
log(
  `corpus: ${corpus.train.length} dialogues, ${textIds.length} tokens (${packed.tokens} packed, ` +
    `${(packed.padding * 100).toFixed(1)}% padding); model: ${parameters} parameters`,
);

if (args.untrained) {
  await writeGguf(args.untrained, modelMetadata(spec), modelTensors(spec));
  log(`wrote ${args.untrained}`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), "roundhouse-make-model-"));
// The F32 intermediates are tens of MB: do not leave them behind on Ctrl-C.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
}
try {
  const untrained = join(work, "untrained.gguf");
  const trained = join(work, "trained.gguf");
  const f32 = args["keep-f32"] ?? join(work, "model-f32.gguf");
  const textFile = join(work, "train.txt");
  writeFileSync(textFile, packed.text);
  await writeGguf(untrained, modelMetadata(spec), modelTensors(spec));

  const training = {
    context: recipe.trainContext,
    epochs: recipe.epochs,
    lr: recipe.lr,
    lrMin: recipe.lrMin,
    valSplit: 0.05,
    threads,
  };
  let lastProgress = performance.now();
  const result = await finetune({
    model: untrained,
    textFile,
    out: trained,
    ...training,
    decayEpochs: training.epochs,
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
    fileType: 0, // all F32
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
  await writeEmbeddingModel(files.q8_0, embeddingModelFile(outDir));

  const quality = {
    q8_0: await evaluate(files.q8_0, corpus.evalSet),
    q4_0: await evaluate(files.q4_0, corpus.evalSet),
  };
  log(`evaluation prompts right: Q8_0 ${quality.q8_0.right}/${quality.q8_0.items.length}, Q4_0 ${quality.q4_0.right}`);

  const argv = process.argv.slice(2);
  writeModelCard(join(outDir, "MODEL-CARD.md"), {
    command: `npm run make-model${argv.length ? ` -- ${argv.join(" ")}` : ""}`,
    name: MODEL_NAME,
    seed,
    recipe,
    spec,
    parameters,
    corpus: {
      dialogues: corpus.train.length,
      tokens: textIds.length,
      packedTokens: packed.tokens,
      padding: packed.padding,
    },
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
