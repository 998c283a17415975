// Makes `tiny-think`: the built-in tiny model fine-tuned, with the project's own llama-finetune
// pipeline, on generated dialogues (scripts/model/think-dataset.ts) rendered with a Qwen 3-style
// template (scripts/model/think-chat-template.ts), so that it writes a short thought in
// `<think>…</think>` before it answers, and answers at once when the template's
// `enable_thinking` switch puts an empty block in the prompt. `<think>` and `</think>` are first
// added to the vocabulary as whole tokens (THINK_ADDED_TOKENS), as Qwen 3 carries them.
//
//   npm run make-think-model                  # writes models/roundhouse-tiny-think-q8_0.gguf
//   npm run make-think-model -- --epochs 8 --out /tmp/try.gguf
import { join } from "node:path";
import { ChatTemplate } from "../src/engine/chat-template.ts";
import { chatModelArgs, makeChatModel, rotated } from "./model/chat-model.ts";
import { MODELS_DIR } from "./model/recipe.ts";
import { THINK_ADDED_TOKENS, THINK_CHAT_TEMPLATE } from "./model/think-chat-template.ts";
import { dialogues } from "./model/think-dataset.ts";

export const THINK_MODEL_NAME = "roundhouse-tiny-think";
/** Seed of the added tokens' embeddings and output rows (scripts/model/added-tokens.ts). */
const ADDED_TOKENS_SEED = 7;

const args = chatModelArgs("make-think-model", {
  repeats: 20,
  out: join(MODELS_DIR, `${THINK_MODEL_NAME}-q8_0.gguf`),
});
const template = new ChatTemplate(THINK_CHAT_TEMPLATE, { bos: "", eos: "" });
const texts = rotated(dialogues(), args.repeats).map((d) => template.render(d, { addGenerationPrompt: false }));
await makeChatModel({
  name: THINK_MODEL_NAME,
  chatTemplate: THINK_CHAT_TEMPLATE,
  addedTokens: THINK_ADDED_TOKENS,
  seed: ADDED_TOKENS_SEED,
  texts,
  ...args,
});
