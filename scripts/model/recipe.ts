// The fixed choices behind the built-in model, shared by the script that makes it
// and the tests that check it, so both always mean the same model and corpus.
import { fileURLToPath } from "node:url";

export const MODEL_NAME = "roundhouse-tiny";
/** Seed of the corpus, the vocabulary and the initial weights. */
export const SEED = 2;
export const CONTROL_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];
/** The corpus yields ~1,250 merges; a little headroom keeps every merge. */
export const VOCAB_SIZE = 1280;
/** What the shipped file declares; training windows are much shorter. */
export const CONTEXT_LENGTH = 2048;

export const MODELS_DIR = fileURLToPath(new URL("../../models/", import.meta.url));
export const modelFile = (quant: "q8_0" | "q4_0", dir = MODELS_DIR): string =>
  `${dir.replace(/\/?$/, "/")}${MODEL_NAME}-${quant}.gguf`;

/** Everything that shapes the shipped model; `npm run make-model -- --help` lists
 * the flags that override one field for an experiment. */
export interface Recipe {
  /** Times each fact is asked in the corpus (all in its canonical wording up to 4). */
  repeats: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  headDim: number;
  nFf: number;
  /** Per layer ("/"), per head (","): tokens back it attends ("3", "12-24") or "c". */
  attention: string;
  residualScale: number;
  semanticDims: number;
  semanticScale: number;
  /** llama-finetune: tokens per step (-c, -b, -ub), epochs, learning rate decaying linearly to lrMin. */
  trainContext: number;
  epochs: number;
  lr: number;
  lrMin: number;
}

// Found by experiment on the 2-core machine (see MODEL-CARD.md). 8 heads of 16
// dims give layer 0 a head for each of the 8 previous tokens. llama.cpp pads any
// context to 256 tokens, so llama-finetune always trains on 256-token windows and
// -c only sets the tokens per optimizer step: 32 gives 8 steps a window for the
// compute of one, and learning here is limited by steps, not tokens. AdamW goes
// unstable above ~2e-4 with 128-token steps and needs less with smaller ones.
export const RECIPE: Recipe = {
  repeats: 4,
  nEmbd: 128,
  nLayer: 4,
  nHead: 8,
  headDim: 16,
  nFf: 512,
  attention: "1,2,3,4,5,6,7,8/1,2,3,4,6,8,c,c/1,2,4,8,12-24,c,c,c/1,2,c,c,c,c,c,c",
  residualScale: 1.4,
  semanticDims: 32,
  semanticScale: 2,
  trainContext: 32,
  epochs: 12,
  lr: 1e-4,
  lrMin: 1e-5,
};
