// The fixed choices behind the built-in model, shared by the script that makes it
// and the tests that check it, so both always mean the same model and corpus.
import { fileURLToPath } from "node:url";

export const MODEL_NAME = "switchyard-tiny";
/** Seed of the corpus, the vocabulary and the initial weights. */
export const SEED = 1;
export const CONTROL_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];
/** The corpus yields ~1,250 merges; a little headroom keeps every merge. */
export const VOCAB_SIZE = 1280;
/** What the shipped file declares; training windows are much shorter. */
export const CONTEXT_LENGTH = 2048;

export const MODELS_DIR = fileURLToPath(new URL("../../models/", import.meta.url));
export const modelFile = (quant: "q8_0" | "q4_0", dir = MODELS_DIR): string =>
  `${dir.replace(/\/?$/, "/")}${MODEL_NAME}-${quant}.gguf`;
