import { describe, expect, it } from "vitest";
import { encode, trainBpe } from "../../scripts/model/bpe.ts";
import { generateCorpus, renderTrainingText } from "../../scripts/model/corpus.ts";
import { packDialogues } from "../../scripts/model/packing.ts";

describe("packDialogues", () => {
  const { train } = generateCorpus(3, { repeats: 1 });
  const vocab = trainBpe([renderTrainingText(train)], {
    vocabSize: 640,
    controlTokens: ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
  });
  const block = 64;
  const packed = packDialogues(train, vocab, block, 1);
  // As llama-finetune tokenizes it: its own BOS, then the text with special tokens parsed.
  const ids = [vocab.bosId, ...encode(vocab, packed.text, { parseSpecial: true })];

  it("keeps every dialogue, once", () => {
    const starts = packed.text.split("<s><|").length - 1;
    expect(starts).toBe(train.length);
    expect(packed.tokens).toBe(ids.length);
    expect(ids.length % block).toBe(0);
    expect(packed.padding).toBeLessThan(0.15);
  });

  it("starts every block with a dialogue or padding, unless a long dialogue runs through it", () => {
    const bos = vocab.bosId;
    let runningOn = 0;
    for (let start = 0; start < ids.length; start += block) {
      // Inside a long dialogue: from its <s> to its last <|end|>, no block boundary is checked.
      if (runningOn > start) continue;
      expect(ids[start], `block at token ${start}`).toBe(bos);
      // Find where the dialogue starting here ends, to skip blocks it runs through.
      let i = start;
      while (i < ids.length && ids[i] === bos) i++;
      let end = i;
      while (end < ids.length && ids[end] !== bos) end++;
      runningOn = end;
    }
  });
});
