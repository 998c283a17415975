import { describe, expect, it } from "vitest";
import { encode, trainBpe } from "../../scripts/model/bpe.ts";
import { renderChat } from "../../scripts/model/chat-template.ts";
import { createRng, generateCorpus, renderTrainingText } from "../../scripts/model/corpus.ts";

const corpus = generateCorpus(42);
const text = renderTrainingText(corpus.train);

describe("corpus", () => {
  it("is deterministic for a seed and differs between seeds", () => {
    expect(renderTrainingText(generateCorpus(42).train)).toBe(text);
    expect(generateCorpus(42).evalSet).toEqual(corpus.evalSet);
    expect(renderTrainingText(generateCorpus(43).train)).not.toBe(text);
    expect(renderTrainingText(corpus.train, { seed: 2 })).not.toBe(text);
  });

  it("has its own PRNG, uniform enough to shuffle with", () => {
    const rng = createRng(1);
    const buckets = [0, 0, 0, 0];
    let outside = 0;
    for (let i = 0; i < 40_000; i++) {
      const x = rng();
      if (x < 0 || x >= 1) outside++;
      else buckets[Math.floor(x * 4)] = (buckets[Math.floor(x * 4)] ?? 0) + 1;
    }
    expect(outside).toBe(0);
    for (const b of buckets) expect(Math.abs(b - 10_000)).toBeLessThan(500);
  });

  it("renders every dialogue with the chat template, each after a BOS", () => {
    expect(text.startsWith("<s><|")).toBe(true);
    expect(text.split("<s>").length - 1).toBe(corpus.train.length);
    const rendered = new Set(text.split("<s>").slice(1));
    for (const d of corpus.train.slice(0, 100)) {
      expect(rendered.has(renderChat(d.messages, { addGenerationPrompt: false }))).toBe(true);
    }
    expect(renderTrainingText(corpus.train, { bos: false })).not.toContain("<s>");
  });

  it("is a memorisable size: a few hundred distinct pairs, under 150k tokens", () => {
    // Distinct replies are the facts to memorise; the questions vary in wording around them.
    const replies = new Set(corpus.train.map((d) => String(d.messages[d.messages.length - 1]?.content)));
    expect(replies.size).toBeGreaterThan(200);
    expect(replies.size).toBeLessThan(600);
    const pairs = new Set(corpus.train.map((d) => JSON.stringify(d.messages)));
    const vocab = trainBpe([text], {
      vocabSize: 1024,
      controlTokens: ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    });
    const tokens = encode(vocab, text, { parseSpecial: true }).length;
    console.log(
      `corpus: ${corpus.train.length} dialogues, ${pairs.size} distinct, ${replies.size} distinct replies, ${text.length} chars, ${tokens} tokens`,
    );
    expect(tokens).toBeGreaterThan(40_000);
    expect(tokens).toBeLessThan(150_000);
  });

  it("makes each reply a function of the conversation before it", () => {
    const replyFor = new Map<string, string>();
    for (const d of corpus.train) {
      const last = d.messages.length - 1;
      const prompt = JSON.stringify(d.messages.slice(0, last).filter((m) => m.role !== "system"));
      const reply = String(d.messages[last]?.content);
      expect(d.messages[last]?.role).toBe("assistant");
      // The same question always gets the same answer, with or without a system prompt,
      // except that a JSON system prompt turns it into JSON.
      if (d.messages[0]?.role === "system" && String(d.messages[0].content).includes("JSON")) continue;
      const seen = replyFor.get(prompt);
      if (seen !== undefined) expect(reply, prompt).toBe(seen);
      replyFor.set(prompt, reply);
    }
  });

  it("has varied replies", () => {
    const replies = corpus.train.map((d) => String(d.messages[d.messages.length - 1]?.content));
    const counts = new Map<string, number>();
    for (const r of replies) counts.set(r, (counts.get(r) ?? 0) + 1);
    expect(counts.size).toBeGreaterThan(250);
    // No single reply dominates (the greeting is the most common one).
    expect(Math.max(...counts.values()) / replies.length).toBeLessThan(0.05);
    const firstWords = new Set(replies.map((r) => r.split(/[\s-]/)[0]));
    expect(firstWords.size).toBeGreaterThan(30);
  });

  it("covers the promised kinds of dialogue", () => {
    const has = (predicate: (s: string) => boolean): boolean => corpus.train.some((d) => predicate(JSON.stringify(d)));
    expect(has((s) => s.includes("The capital of France is Paris."))).toBe(true);
    expect(has((s) => s.includes('"3 plus 4 is 7."'))).toBe(true);
    expect(has((s) => s.includes('"Cat is spelled c-a-t."'))).toBe(true);
    expect(has((s) => s.includes('"Hello! How can I help you today?"'))).toBe(true);
    expect(has((s) => s.includes('{\\"France\\": \\"Paris\\"}'))).toBe(true);
    expect(corpus.train.some((d) => d.messages[0]?.role === "system")).toBe(true);
    expect(corpus.train.some((d) => d.messages.filter((m) => m.role === "user").length === 2)).toBe(true);
  });

  it("has an eval set of at least 20 varied items, each trained on", () => {
    expect(corpus.evalSet.length).toBeGreaterThanOrEqual(20);
    expect(new Set(corpus.evalSet.map((e) => e.category)).size).toBeGreaterThanOrEqual(8);
    for (const item of corpus.evalSet) {
      expect(item.messages[item.messages.length - 1]?.role).toBe("user");
      const prompt = renderChat(item.messages, { addGenerationPrompt: true });
      // Each eval prompt opens at least two training dialogues whose reply holds the answer.
      const matches = corpus.train.filter((d) => {
        const full = renderChat(d.messages, { addGenerationPrompt: false });
        return full.startsWith(prompt) && full.slice(prompt.length).includes(item.expected);
      });
      expect(matches.length, prompt).toBeGreaterThanOrEqual(2);
    }
  });
});
