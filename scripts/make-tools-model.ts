// Makes `tiny-tools`: the built-in tiny model fine-tuned, with the project's own llama-finetune
// pipeline, on generated tool-use dialogues rendered with a Hermes-style template
// (scripts/model/tools-chat-template.ts), so that it natively writes `<tool_call>` blocks. The
// call's fixed text is first added to the vocabulary as a few whole tokens (TOOLS_ADDED_TOKENS),
// which brings the tool's name within the ~8 tokens the model attends to, so it can choose.
//
//   npm run make-tools-model                  # writes models/roundhouse-tiny-tools-q8_0.gguf
//   npm run make-tools-model -- --epochs 8 --out /tmp/try.gguf
import { join } from "node:path";
import { ChatTemplate } from "../src/engine/chat-template.ts";
import { chatModelArgs, makeChatModel, rotated } from "./model/chat-model.ts";
import { MODELS_DIR } from "./model/recipe.ts";
import { TOOLS_ADDED_TOKENS, TOOLS_CHAT_TEMPLATE } from "./model/tools-chat-template.ts";
import { dialogues, TOOLS } from "./model/tools-dataset.ts";

export const TOOLS_MODEL_NAME = "roundhouse-tiny-tools";
/** Seed of the added tokens' embeddings and output rows (scripts/model/added-tokens.ts). */
const ADDED_TOKENS_SEED = 7;

const args = chatModelArgs("make-tools-model", {
  repeats: 10,
  out: join(MODELS_DIR, `${TOOLS_MODEL_NAME}-q8_0.gguf`),
});
const template = new ChatTemplate(TOOLS_CHAT_TEMPLATE, { bos: "", eos: "" });
const texts = rotated(dialogues(), args.repeats).map((d) =>
  template.render(d, { addGenerationPrompt: false, variables: { tools: TOOLS } }),
);
await makeChatModel({
  name: TOOLS_MODEL_NAME,
  chatTemplate: TOOLS_CHAT_TEMPLATE,
  addedTokens: TOOLS_ADDED_TOKENS,
  seed: ADDED_TOKENS_SEED,
  texts,
  ...args,
});
