// The built-in embedding model: the tiny chat model's own weights and tokenizer, read with mean
// pooling. A decoder's hidden states, averaged over the input and normalised, place texts that
// share words and phrasing near each other; that is what tests and the quick start need of an
// embedding model (test/quality/embedding-quality.test.ts measures it on the training facts'
// paraphrases). llama.cpp reads the pooling from `<arch>.pooling_type` (1: mean).
import { gguf, patchGgufMetadata } from "../../src/engine/gguf.ts";
import { MODEL_NAME, MODELS_DIR } from "./recipe.ts";

export const EMBEDDING_MODEL_NAME = `${MODEL_NAME}-embed`;
export const embeddingModelFile = (dir = MODELS_DIR): string =>
  `${dir.replace(/\/?$/, "/")}${EMBEDDING_MODEL_NAME}-q8_0.gguf`;

const POOLING_MEAN = 1;

export async function writeEmbeddingModel(chatModel: string, out: string): Promise<void> {
  await patchGgufMetadata(chatModel, out, (m) => {
    const arch = m.get("general.architecture");
    const prefix = arch?.type === "string" ? arch.value : "llama";
    m.set("general.name", gguf.string(EMBEDDING_MODEL_NAME));
    m.set(`${prefix}.pooling_type`, gguf.u32(POOLING_MEAN));
    // An embedding model answers no chat: without a template nobody mistakes it for one.
    m.delete("tokenizer.chat_template");
  });
}
