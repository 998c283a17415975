// Lays the training dialogues out so that every llama-finetune window starts at a
// dialogue boundary. llama-finetune cuts its text into windows of c tokens stepping
// c/2 without looking at content; a dialogue cut by a window's start trains its
// reply without the question that determines it, which only teaches the model to
// guess. Packing dialogues into blocks of c/2 tokens (padded with BOS) means every
// window starts on a block, and so on a dialogue.
import { encode, type Vocabulary } from "./bpe.ts";
import { renderChat } from "./chat-template.ts";
import { createRng, type Dialogue } from "./corpus.ts";

export interface PackedText {
  text: string;
  /** Tokens of `text` as llama-finetune sees them, its own leading BOS included. */
  tokens: number;
  /** Share of the tokens that are padding. */
  padding: number;
}

const PAD = "<s>"; // BOS: one token, and what precedes every dialogue anyway

/**
 * First-fit packing of the dialogues (in seeded random order) into blocks of
 * `block` tokens. A dialogue longer than a block starts a block of its own and runs
 * on into the next ones. Returns the text to train on.
 */
export function packDialogues(
  dialogues: readonly Dialogue[],
  vocab: Vocabulary,
  block: number,
  seed: number,
): PackedText {
  const rng = createRng(seed);
  const order = dialogues.map((d) => `${PAD}${renderChat(d.messages, { addGenerationPrompt: false })}`);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j] as string, order[i] as string];
  }
  // Texts are split at special tokens before tokenizing, so a dialogue (which
  // starts with one) has the same tokens alone as inside the whole text.
  const size = (t: string) => encode(vocab, t, { parseSpecial: true }).length;

  const blocks: { parts: string[]; free: number }[] = [];
  for (const dialogue of order) {
    const n = size(dialogue);
    const fit = n <= block ? blocks.find((b) => b.free >= n) : undefined;
    if (fit) {
      fit.parts.push(dialogue);
      fit.free -= n;
      continue;
    }
    // llama-finetune puts a BOS of its own before the text: the first block has one token less.
    let left = n - (blocks.length === 0 ? block - 1 : block);
    blocks.push({ parts: [dialogue], free: Math.max(0, -left) });
    // A long dialogue runs on through whole blocks; the rest of its last one stays open.
    while (left > 0) {
      const used = Math.min(left, block);
      blocks.push({ parts: [], free: block - used });
      left -= used;
    }
  }
  const padding = blocks.reduce((sum, b) => sum + b.free, 0);
  const text = blocks.map((b) => b.parts.join("") + PAD.repeat(b.free)).join("");
  const tokens = 1 + size(text);
  return { text, tokens, padding: padding / tokens };
}
