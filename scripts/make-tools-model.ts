// Makes `tiny-tools`: the built-in tiny model fine-tuned, with the project's own llama-finetune
// pipeline, on generated tool-use dialogues rendered with a Hermes-style template
// (scripts/model/tools-chat-template.ts), so that it natively writes `<tool_call>` blocks. The
// call's fixed text is first added to the vocabulary as a few whole tokens (TOOLS_ADDED_TOKENS),
// which brings the tool's name within the ~8 tokens the model attends to, so it can choose.
//
//   npm run make-tools-model                  # writes models/roundhouse-tiny-tools-q8_0.gguf
//   npm run make-tools-model -- --epochs 8 --out /tmp/try.gguf
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ChatTemplate } from "../src/engine/chat-template.ts";
import { makeChatModel } from "./model/chat-model.ts";
import { MODELS_DIR } from "./model/recipe.ts";
import { TOOLS_ADDED_TOKENS, TOOLS_CHAT_TEMPLATE } from "./model/tools-chat-template.ts";
import { dialogues, TOOLS } from "./model/tools-dataset.ts";

export const TOOLS_MODEL_NAME = "roundhouse-tiny-tools";
/** Seed of the added tokens' embeddings and output rows (scripts/model/added-tokens.ts). */
const ADDED_TOKENS_SEED = 7;

const { values: args } = parseArgs({
  options: {
    epochs: { type: "string", default: "16" },
    lr: { type: "string", default: "0.0003" },
    repeats: { type: "string", default: "10" },
    threads: { type: "string", default: String(Math.max(1, availableParallelism())) },
    out: { type: "string", default: join(MODELS_DIR, `${TOOLS_MODEL_NAME}-q8_0.gguf`) },
  },
});
const threads = Number(args.threads);
const t0 = performance.now();
const log = (msg: string) => console.log(`[make-tools-model ${((performance.now() - t0) / 1000).toFixed(1)}s] ${msg}`);

const template = new ChatTemplate(TOOLS_CHAT_TEMPLATE, { bos: "", eos: "" });
const all = dialogues();
const texts: string[] = [];
for (let r = 0; r < Number(args.repeats); r++) {
  // A fixed rotation per repeat: every dialogue follows a different one each time.
  for (let i = 0; i < all.length; i++) {
    const d = all[(i * (r + 1) + r) % all.length] ?? all[i];
    if (d) texts.push(template.render(d, { addGenerationPrompt: false, variables: { tools: TOOLS } }));
  }
}
await makeChatModel({
  name: TOOLS_MODEL_NAME,
  chatTemplate: TOOLS_CHAT_TEMPLATE,
  addedTokens: TOOLS_ADDED_TOKENS,
  seed: ADDED_TOKENS_SEED,
  texts,
  epochs: Number(args.epochs),
  lr: Number(args.lr),
  threads,
  out: args.out as string,
  log,
});
