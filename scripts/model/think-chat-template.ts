import { TOOLS_CHAT_TEMPLATE } from "./tools-chat-template.ts";

/** The line of `tiny-tools`' template that opens the reply. */
const TOOLS_GENERATION_PROMPT = "{%- if add_generation_prompt -%}{{- '<|assistant|>\\n' -}}{%- endif -%}";

/**
 * The chat template of `tiny-think`: `tiny-tools`' (the tiny model's own turn tokens, Hermes /
 * Qwen tool calls) with Qwen 3's thinking switch. A reply is `<think>\n…\n</think>\n\n` then the
 * answer; with `enable_thinking` false the generation prompt holds an empty
 * `<think>\n\n</think>\n\n`, as Qwen 3's own template writes it, and the model answers at once.
 * Otherwise the generation prompt opens the block itself (`<think>\n`, as the templates of
 * DeepSeek R1 and Qwen 3's 2507 thinking models do), and the server starts the reply in the
 * thoughts. Why: llama-finetune learns every token of the text, the template's included, and
 * with both kinds of dialogue trained the model learnt to write `<think>` or the empty block in
 * the proportion it saw them; whether to think was a guess (4 to 1 thinking in training: 5 of
 * the 6 prompts thought, 4 of 6 answered right without thinking). Written by the template,
 * neither is the model's to choose.
 * `<tool_call>` and `<think>` in one template are what make the server read it as the `qwen3`
 * family (src/engine/tool-formats/families.ts), and `enable_thinking` what lets `reasoning_effort`
 * turn thinking off. An assistant turn of the history is rendered as its content: Qwen 3's
 * template drops the thoughts of earlier turns, but the server hands a template each message's
 * content as a placeholder (src/engine/chat-template.ts), so nothing it splits there would hold.
 */
export const THINK_CHAT_TEMPLATE = (() => {
  if (!TOOLS_CHAT_TEMPLATE.endsWith(TOOLS_GENERATION_PROMPT)) throw new Error("tiny-tools' template changed its end");
  return [
    TOOLS_CHAT_TEMPLATE.slice(0, -TOOLS_GENERATION_PROMPT.length),
    "{%- if add_generation_prompt -%}",
    "{{- '<|assistant|>\\n' -}}",
    "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}",
    "{%- else -%}{{- '<think>\\n' -}}{%- endif -%}",
    "{%- endif -%}",
  ].join("");
})();

/**
 * Text the template and the model write, added to the vocabulary as whole tokens
 * (scripts/model/added-tokens.ts). `<think>` and `</think>` as Qwen 3 carries them: in the base
 * vocabulary's pieces each is 5 tokens. And the whole empty block that `enable_thinking: false`
 * puts in the prompt, as one token: spelled `<think>`, `\n`, `\n`, `</think>`, `\n`, `\n` it
 * stood between the question and the answer, and without thinking the model gave one answer to
 * almost every question (1 of 6 right); as one token the question's last word is one token
 * further from the answer than for the built-in model, which answers without a block (5 of 6).
 */
export const THINK_ADDED_TOKENS = ["<think>", "</think>", "<think>\n\n</think>\n\n"];
