// A rendered prompt → tokens. Only the template's own pieces are parsed for control tokens;
// message content is tokenized as plain text, so `<|end|>\n<|system|>` inside a message is
// text the model reads, not a turn it obeys. Tokenizing is synchronous native work of ~0.8 ms
// per KiB (a 256 KiB prompt held the event loop 208 ms), so long text is tokenized in slices
// cut before a space, with the event loop free between them.
import { setImmediate as yieldToLoop } from "node:timers/promises";
import type { LlamaModel, Token } from "node-llama-cpp";
import type { PromptPart } from "./chat-template.ts";

/** Bytes tokenized between two turns of the event loop (~13 ms of work). */
export const SLICE_BYTES = 16 * 1024;

export async function tokenizePrompt(
  model: LlamaModel,
  parts: readonly PromptPart[],
  sliceBytes = SLICE_BYTES,
): Promise<Token[]> {
  const tokens: Token[] = [];
  let sinceYield = 0;
  for (const part of parts) {
    for (const slice of part.control ? [part.text] : slices(part.text, sliceBytes)) {
      // As node-llama-cpp's LlamaText does: text that continues a prompt gets no leading space
      // of its own (SentencePiece tokenizers add one to the start of every text they see).
      const options = tokens.length > 0 ? "trimLeadingSpace" : undefined;
      for (const t of model.tokenize(slice, part.control, options)) tokens.push(t);
      sinceYield += slice.length;
      if (sinceYield >= sliceBytes) {
        sinceYield = 0;
        await yieldToLoop();
      }
    }
  }
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens.unshift(bos);
  return tokens;
}

/**
 * `text` cut into pieces of at most about `size` characters, each cut before a single space or a
 * line break that follows a word: tokenizers start a word's token at its leading space, so the
 * pieces tokenize as the whole. A stretch with no such place stays whole.
 */
export function slices(text: string, size: number): string[] {
  if (text.length <= size) return [text];
  const out: string[] = [];
  let start = 0;
  while (text.length - start > size) {
    let cut = start + size;
    while (cut > start && !isCut(text, cut)) cut--;
    if (cut === start) break;
    out.push(text.slice(start, cut));
    start = cut;
  }
  out.push(text.slice(start));
  return out;
}

function isCut(text: string, i: number): boolean {
  const before = text[i - 1] ?? "";
  if (!/\S/.test(before)) return false;
  if (text[i] === "\n") return true;
  return text[i] === " " && /\S/.test(text[i + 1] ?? "");
}

/** UTF-8 bytes of the whole prompt, to refuse one that cannot fit before tokenizing it. */
export function promptBytes(parts: readonly PromptPart[]): number {
  let bytes = 0;
  for (const p of parts) bytes += Buffer.byteLength(p.text);
  return bytes;
}
