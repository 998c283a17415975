import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { getLlama, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decode, encode, TokenType, trainBpe, type Vocabulary } from "../../scripts/model/bpe.ts";
import { generateCorpus, renderTrainingText } from "../../scripts/model/corpus.ts";
import { type GgufMetadata, gguf, writeGguf } from "../../src/engine/gguf.ts";

const CONTROL = ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"];
const corpusText = renderTrainingText(generateCorpus(42).train);
const vocab = trainBpe([corpusText], { vocabSize: 1024, controlTokens: CONTROL });

/** A hand-made vocabulary for checking the SPM merge rules in isolation. */
function tinyVocab(pieces: [string, number][]): Vocabulary {
  const tokens = ["<unk>", "<s>", "</s>"];
  const types: number[] = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL];
  const scores = [0, 0, 0];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    types.push(TokenType.BYTE);
    scores.push(0);
  }
  for (const [text, score] of pieces) {
    tokens.push(text);
    types.push(TokenType.NORMAL);
    scores.push(score);
  }
  return { tokens, scores, types, unkId: 0, bosId: 1, eosId: 2, addSpacePrefix: false };
}

const idOf = (v: Vocabulary, text: string): number => v.tokens.indexOf(text);

describe("trainBpe layout", () => {
  it("puts specials, control tokens and bytes first, with the right types", () => {
    expect(vocab.tokens.slice(0, 7)).toEqual(["<unk>", "<s>", "</s>", ...CONTROL]);
    expect(vocab.types.slice(0, 7)).toEqual([2, 3, 3, 3, 3, 3, 3]);
    expect(vocab.unkId).toBe(0);
    expect(vocab.bosId).toBe(1);
    expect(vocab.eosId).toBe(idOf(vocab, "<|end|>"));
    expect(vocab.tokens[7]).toBe("<0x00>");
    expect(vocab.tokens[7 + 0x0a]).toBe("<0x0A>");
    expect(vocab.tokens[7 + 255]).toBe("<0xFF>");
    expect(vocab.types.slice(7, 7 + 256).every((t) => t === TokenType.BYTE)).toBe(true);
    expect(vocab.types.slice(7 + 256).every((t) => t === TokenType.NORMAL || t === TokenType.UNUSED)).toBe(true);
    expect(vocab.addSpacePrefix).toBe(false);
  });

  it("fills exactly vocabSize tokens, with unique texts and parallel arrays", () => {
    for (const size of [300, 1024, 4096]) {
      const v = trainBpe([corpusText], { vocabSize: size, controlTokens: CONTROL });
      expect(v.tokens).toHaveLength(size);
      expect(v.scores).toHaveLength(size);
      expect(v.types).toHaveLength(size);
      expect(new Set(v.tokens).size).toBe(size);
    }
  });

  it("never lets a piece span a word boundary", () => {
    for (let id = 7 + 256; id < vocab.tokens.length; id++) {
      if (vocab.types[id] !== TokenType.NORMAL) continue;
      const text = vocab.tokens[id] as string;
      expect(text.indexOf("▁", 1), text).toBe(-1);
      if (text.length > 1) expect(text, "no newline in merged pieces").not.toMatch(/\s/);
    }
    expect(vocab.tokens).toContain("▁");
    expect(vocab.tokens, "newline is the <0x0A> byte token").not.toContain("\n");
  });

  it("is deterministic and independent of the order of the texts", () => {
    const texts = corpusText.split("<s>");
    const a = trainBpe(texts, { vocabSize: 800, controlTokens: CONTROL });
    const b = trainBpe(texts, { vocabSize: 800, controlTokens: CONTROL });
    const c = trainBpe([...texts].reverse(), { vocabSize: 800, controlTokens: CONTROL });
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it("scores merged pieces by merge rank, most frequent pair first", () => {
    const v = trainBpe(["ab ab ab ab ab abc abc cd"], { vocabSize: 300, controlTokens: [] });
    const normal = v.tokens.map((t, id) => ({ t, id })).filter(({ id }) => v.types[id] === TokenType.NORMAL);
    // Characters come first (most frequent first), then merges in order.
    expect(normal.slice(0, 5).map((x) => x.t)).toEqual(["a", "b", "▁", "c", "d"]);
    const merged = normal.slice(5).map((x) => x.t);
    // "a b" occurs 7 times, then "▁ ab" 6 times, then "▁ab c" twice; pairs seen once are never merged.
    expect(merged).toEqual(["ab", "▁ab", "▁abc"]);
    const scores = normal.slice(5).map((x) => v.scores[x.id] as number);
    expect(scores).toEqual([-0, -1, -2]);
    expect(Math.max(...normal.slice(0, 5).map((x) => v.scores[x.id] as number))).toBeLessThan(-2);
    expect(v.types.filter((t) => t === TokenType.UNUSED)).toHaveLength(300 - 3 - 256 - 8);
    expect(encode(v, "ab abc cd", { parseSpecial: false }).map((id) => v.tokens[id])).toEqual([
      "ab",
      "▁abc",
      "▁",
      "c",
      "d",
    ]);
  });

  it("trains a 4k vocabulary on ~1 MB of text in a few seconds", () => {
    let text = "";
    let state = 5;
    const letters = "abcdefghijklmnopqrstuvwxyz";
    while (text.length < 1_000_000) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const n = 2 + (state % 7);
      let word = "";
      for (let i = 0; i < n; i++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        word += letters[(state >>> 16) % 26];
      }
      text += `${word}${state % 13 === 0 ? ".\n" : " "}`;
    }
    const start = performance.now();
    const v = trainBpe([text], { vocabSize: 4096, controlTokens: CONTROL });
    const ms = performance.now() - start;
    expect(v.tokens).toHaveLength(4096);
    expect(ms).toBeLessThan(15_000);
  }, 30_000);
});

describe("encode / decode", () => {
  const samples = [
    "Hello! How can I help you today?",
    "What is 3 plus 4?\n3 plus 4 is 7.",
    "Accents: café, naïve, Ångström, über, façade",
    "Emoji via byte fallback: 😀🚀 and CJK 日本語",
    "Whitespace:  two  spaces,\ttab,\r\nCRLF\n\n\nand trailing ",
    ' leading space and {"answer": "Paris"}',
    "Symbols ~`@#$%^&*()_+=[]\\|;:'\",.<>/?",
  ];

  it("round-trips arbitrary text", () => {
    for (const text of samples) {
      for (const parseSpecial of [true, false]) {
        expect(decode(vocab, encode(vocab, text, { parseSpecial }))).toBe(text);
      }
    }
    expect(encode(vocab, "", { parseSpecial: true })).toEqual([]);
  });

  it("reads a literal ▁ as a space, as llama.cpp does", () => {
    expect(decode(vocab, encode(vocab, "a▁b", { parseSpecial: false }))).toBe("a b");
  });

  it("falls back to bytes for unseen characters", () => {
    const ids = encode(vocab, "😀", { parseSpecial: false });
    expect(ids.map((id) => vocab.tokens[id])).toEqual(["<0xF0>", "<0x9F>", "<0x98>", "<0x80>"]);
    expect(encode(vocab, "\n", { parseSpecial: false })).toEqual([idOf(vocab, "<0x0A>")]);
  });

  it("recognises control tokens only with parseSpecial", () => {
    const text = "<|user|>\nHello!<|end|>\n<|assistant|>\n";
    const parsed = encode(vocab, text, { parseSpecial: true });
    expect(parsed[0]).toBe(idOf(vocab, "<|user|>"));
    expect(parsed).toContain(idOf(vocab, "<|end|>"));
    expect(parsed).toContain(idOf(vocab, "<|assistant|>"));
    const raw = encode(vocab, text, { parseSpecial: false });
    expect(raw.some((id) => vocab.types[id] === TokenType.CONTROL)).toBe(false);
    expect(decode(vocab, raw)).toBe(text);
    expect(decode(vocab, parsed, { skipSpecial: true })).toBe("\nHello!\n\n");
    expect(encode(vocab, "<s>hi", { parseSpecial: true, addBos: true }).slice(0, 2)).toEqual([1, 1]);
  });

  it("applies the highest-scoring merge first, leftmost on ties", () => {
    const v = tinyVocab([
      ["a", -10],
      ["b", -11],
      ["c", -12],
      ["ab", -1],
      ["bc", 0],
    ]);
    expect(encode(v, "abc", { parseSpecial: false }).map((id) => v.tokens[id])).toEqual(["a", "bc"]);
    const tie = tinyVocab([
      ["a", -10],
      ["b", -11],
      ["c", -12],
      ["ab", 0],
      ["bc", 0],
    ]);
    expect(encode(tie, "abc", { parseSpecial: false }).map((id) => tie.tokens[id])).toEqual(["ab", "c"]);
  });

  it("compresses the training corpus", () => {
    const ids = encode(vocab, corpusText, { parseSpecial: true });
    const charsPerToken = corpusText.length / ids.length;
    console.log(
      `corpus: ${corpusText.length} chars, ${ids.length} tokens, ${charsPerToken.toFixed(2)} chars/token (vocab 1024)`,
    );
    expect(charsPerToken).toBeGreaterThan(3.5);
    expect(decode(vocab, ids)).toBe(corpusText);
  });
});

// The point of mirroring llm_tokenizer_spm is that llama.cpp agrees token for token;
// check it against the real thing through a vocabulary-only GGUF.
describe("agreement with llama.cpp", () => {
  let dir = "";
  let model: LlamaModel | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "roundhouse-bpe-"));
    const path = join(dir, "vocab.gguf");
    const metadata: GgufMetadata = new Map([
      ["general.architecture", gguf.string("llama")],
      ["llama.vocab_size", gguf.u32(vocab.tokens.length)],
      ["llama.context_length", gguf.u32(256)],
      ["llama.embedding_length", gguf.u32(64)],
      ["llama.block_count", gguf.u32(1)],
      ["llama.feed_forward_length", gguf.u32(128)],
      ["llama.attention.head_count", gguf.u32(2)],
      ["llama.attention.layer_norm_rms_epsilon", gguf.f32(1e-5)],
      ["tokenizer.ggml.model", gguf.string("llama")],
      ["tokenizer.ggml.tokens", gguf.strings(vocab.tokens)],
      ["tokenizer.ggml.scores", gguf.numbers("f32", vocab.scores)],
      ["tokenizer.ggml.token_type", gguf.numbers("i32", vocab.types)],
      ["tokenizer.ggml.unknown_token_id", gguf.u32(vocab.unkId)],
      ["tokenizer.ggml.bos_token_id", gguf.u32(vocab.bosId)],
      ["tokenizer.ggml.eos_token_id", gguf.u32(vocab.eosId)],
      ["tokenizer.ggml.add_space_prefix", gguf.bool(vocab.addSpacePrefix)],
    ]);
    await writeGguf(path, metadata, []);
    // A vocabulary-only file has no tensors, so node-llama-cpp's memory estimate
    // logs a failed load; that noise is expected.
    const llama = await getLlama({ gpu: false, logger: () => {} });
    model = await llama.loadModel({ modelPath: path, vocabOnly: true });
  }, 60_000);

  afterAll(async () => {
    await model?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("tokenizes exactly like llama.cpp", () => {
    const m = model as LlamaModel;
    const texts = [corpusText.slice(0, 30_000), ...corpusText.split("<s>").slice(0, 100)];
    texts.push(
      "<s>x</s><unk><|end|>",
      " <|user|>\n hi \n<|end|> \n",
      "a\u0301 combining",
      "lone \uD800 surrogate",
      "▁▁ literal marks",
    );
    let state = 9;
    const alphabet = [..."abcTHE ,.!?\n01239{}\"'é😀<|>/s-\t"];
    for (let i = 0; i < 200; i++) {
      let text = "";
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      const n = state % 50;
      for (let j = 0; j < n; j++) {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        text += alphabet[(state >>> 16) % alphabet.length];
      }
      texts.push(text);
    }
    for (const text of texts) {
      for (const parseSpecial of [true, false]) {
        const theirs = Array.from(m.tokenize(text, parseSpecial), Number);
        expect(encode(vocab, text, { parseSpecial }), JSON.stringify(text)).toEqual(theirs);
      }
    }
  });

  it("agrees on the special tokens", () => {
    const m = model as LlamaModel;
    expect(m.tokens.bos).toBe(vocab.bosId);
    expect(m.tokens.eos).toBe(vocab.eosId);
    expect(m.tokens.eot).toBe(idOf(vocab, "<|end|>"));
    expect(m.tokens.nl).toBe(idOf(vocab, "<0x0A>"));
    expect(m.detokenize(m.tokenize("Hi there!\nBye.", false))).toBe("Hi there!\nBye.");
  });
});
