import { afterAll, describe, expect, it } from "vitest";
import { CALIBRATION_TEXT } from "../../src/telemetry/calibration-text.ts";
import { ReferencePricing } from "../../src/telemetry/reference-price.ts";
import { encodingNameFor, TokenCounter } from "../../src/telemetry/tokens.ts";

const counter = new TokenCounter();
afterAll(() => counter.free());

describe("TokenCounter (tiktoken)", () => {
  it("picks the model's encoding, o200k_base for names tiktoken does not know", () => {
    expect(encodingNameFor("gpt-4o-mini")).toBe("o200k_base");
    expect(encodingNameFor("gpt-4")).toBe("cl100k_base");
    expect(encodingNameFor("gpt-3.5-turbo")).toBe("cl100k_base");
    expect(encodingNameFor("my-llama-3")).toBe("o200k_base");
  });

  it("counts text as OpenAI's tokenizers do", () => {
    expect(counter.countTokens("hello world", "gpt-4o-mini")).toBe(2);
    expect(counter.countTokens("hello world", "gpt-4")).toBe(2);
    expect(counter.countTokens("", "gpt-4o")).toBe(0);
    // Special-token text is plain text here: a user cannot inject <|endoftext|>.
    expect(counter.countTokens("<|endoftext|>", "gpt-4")).toBeGreaterThan(1);
    // o200k packs non-English text tighter than cl100k.
    const text = "Der schnelle braune Fuchs springt über den faulen Hund.";
    expect(counter.countTokens(text, "gpt-4o")).toBeLessThan(counter.countTokens(text, "gpt-4"));
  });

  it("counts a chat prompt with OpenAI's per-message framing", () => {
    const messages = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "hello world", name: "ann" },
    ];
    const model = "gpt-4o-mini";
    const parts = (text: string) => counter.countTokens(text, model);
    const expected =
      3 + (3 + parts("system") + parts("Be brief.")) + (3 + parts("user") + parts("hello world") + 1 + parts("ann"));
    expect(counter.countChatPrompt(messages, model)).toBe(expected);
  });
});

describe("ReferencePricing", () => {
  const prices = new Map([["local", { model: "gpt-4o-mini", input_per_1m: 0.15, output_per_1m: 0.6 }]]);
  // A stand-in tokenizer: the calibration text is 400 reference tokens.
  const fake = { countTokens: (text: string) => (text === CALIBRATION_TEXT ? 400 : 0) };

  it("scales a model's exact counts by its calibrated tokenizer ratio", () => {
    const pricing = new ReferencePricing(prices, fake);
    pricing.calibrate("local", 500);
    expect(pricing.ratio("local")).toBe(0.8);
    const cost = pricing.estimate("local", { promptTokens: 1000, completionTokens: 250 });
    expect(cost).toEqual({
      model: "gpt-4o-mini",
      prompt_tokens: 800,
      completion_tokens: 200,
      cost_usd: (800 * 0.15 + 200 * 0.6) / 1e6,
    });
  });

  it("counts one for one before calibration, and nothing for unpriced models or empty usage", () => {
    const pricing = new ReferencePricing(prices, fake);
    expect(pricing.estimate("local", { promptTokens: 10, completionTokens: 0 })?.prompt_tokens).toBe(10);
    expect(pricing.estimate("other", { promptTokens: 10, completionTokens: 5 })).toBeUndefined();
    expect(pricing.estimate(undefined, { promptTokens: 10, completionTokens: 5 })).toBeUndefined();
    expect(pricing.estimate("local", { promptTokens: 0, completionTokens: 0 })).toBeUndefined();
    expect(pricing.priced("local")).toBe(true);
    expect(pricing.priced("other")).toBe(false);
  });

  it("counts the calibration text with the reference model's real encoding", () => {
    const pricing = new ReferencePricing(prices, counter);
    pricing.calibrate("local", counter.countTokens(CALIBRATION_TEXT, "gpt-4o-mini"));
    expect(pricing.ratio("local")).toBe(1);
  });
});
