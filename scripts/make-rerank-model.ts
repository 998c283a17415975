// Makes `tiny-rerank`, the built-in reranker (scripts/model/reranker.ts): a Qwen 3 reranker GGUF
// written by hand on the tiny model's tokenizer, scoring IDF-weighted word overlap. No training,
// no llama.cpp tools: deterministic, a second or two.
//
//   npm run make-rerank-model                  # writes models/roundhouse-tiny-rerank-f16.gguf
//   npm run make-rerank-model -- --out /tmp/try.gguf
import { join } from "node:path";
import { parseArgs } from "node:util";
import { getLlama } from "node-llama-cpp";
import { readGguf, writeGguf } from "../src/engine/gguf.ts";
import { generateCorpus } from "./model/corpus.ts";
import { CONTEXT_LENGTH, MODELS_DIR, modelFile, SEED } from "./model/recipe.ts";
import {
  calibrate,
  idfWeights,
  lexicalCodes,
  rerankerMetadata,
  rerankerTensors,
  type Tokenizer,
} from "./model/reranker.ts";

export const RERANK_MODEL_NAME = "roundhouse-tiny-rerank";
const CODES_SEED = 13;

const { values } = parseArgs({
  options: { out: { type: "string", default: join(MODELS_DIR, `${RERANK_MODEL_NAME}-f16.gguf`) } },
});
const source = modelFile("q8_0");
const metadata = (await readGguf(source)).metadata;
const model = await (await getLlama({ gpu: false })).loadModel({ modelPath: source });
const pieces = metadata.get("tokenizer.ggml.tokens")?.value as string[];
const tok: Tokenizer = {
  pieces,
  types: metadata.get("tokenizer.ggml.token_type")?.value as number[],
  separator: pieces.indexOf("<|user|>"),
  tokenize: (text) => model.tokenize(text, false, "trimLeadingSpace"),
};
// Word weights from everything the tiny model was trained on, each message one document.
const texts = generateCorpus(SEED).train.flatMap((d) =>
  d.messages.map((m) => (typeof m.content === "string" ? m.content : "")),
);
const codes = lexicalCodes(tok, idfWeights(texts, tok), CODES_SEED);
const calibration = calibrate(codes, tok);
await model.dispose();

const tensors = rerankerTensors(tok, codes, calibration).map((t) =>
  t.dims.length === 2 ? { ...t, type: "F16" as const } : t,
);
await writeGguf(values.out as string, rerankerMetadata(RERANK_MODEL_NAME, metadata, CONTEXT_LENGTH), tensors);
console.log(
  `wrote ${values.out} (threshold ${calibration.threshold.toExponential(3)}, gain ${calibration.gain.toFixed(1)})`,
);
