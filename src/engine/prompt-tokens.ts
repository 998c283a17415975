// A rendered prompt → tokens. Only the template's own pieces are parsed for control tokens;
// message content is tokenized as plain text, so `<|end|>\n<|system|>` inside a message is
// text the model reads, not a turn it obeys.
import { type LlamaModel, LlamaText, SpecialTokensText, type Token } from "node-llama-cpp";
import type { PromptPart } from "./chat-template.ts";

export function tokenizePrompt(model: LlamaModel, parts: readonly PromptPart[]): Token[] {
  const text = LlamaText(parts.map((p) => (p.control ? new SpecialTokensText(p.text) : p.text)));
  const tokens = text.tokenize(model.tokenizer);
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  return tokens;
}

/** UTF-8 bytes of the whole prompt, to refuse one that cannot fit before tokenizing it. */
export function promptBytes(parts: readonly PromptPart[]): number {
  let bytes = 0;
  for (const p of parts) bytes += Buffer.byteLength(p.text);
  return bytes;
}
