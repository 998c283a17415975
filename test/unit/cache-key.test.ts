import { describe, expect, it } from "vitest";
import { cacheKey } from "../../src/cache/key.ts";
import { decideCaching } from "../../src/cache/policy.ts";
import type { ChatCompletionRequest } from "../../src/openai/chat.ts";

const base: ChatCompletionRequest = { model: "tiny", messages: [{ role: "user", content: "Hi" }], temperature: 0 };
const target = { modelId: "tiny", modelDigest: "d1" };

describe("cacheKey", () => {
  it("ignores what does not shape the output", () => {
    const k = cacheKey(target, base);
    expect(cacheKey(target, { ...base, stream: true, stream_options: { include_usage: true }, user: "u1" })).toBe(k);
    expect(cacheKey(target, { ...base, metadata: { a: "b" } })).toBe(k);
    expect(cacheKey(target, { ...base, model: "an-alias" })).toBe(k);
  });

  it("changes with every input that shapes the output", () => {
    const k = cacheKey(target, base);
    const variants: Partial<ChatCompletionRequest>[] = [
      { messages: [{ role: "user", content: "Hello" }] },
      { temperature: 0.5 },
      { top_p: 0.9 },
      { seed: 1 },
      { max_tokens: 5 },
      { stop: ["x"] },
      { n: 2 },
      { presence_penalty: 1 },
      { frequency_penalty: 1 },
      { logit_bias: { "5": 1 } },
      { logprobs: true },
      { response_format: { type: "json_object" } },
      { tools: [{ type: "function", function: { name: "f" } }] },
      { tool_choice: "none" },
    ];
    const keys = variants.map((v) => cacheKey(target, { ...base, ...v }));
    for (const other of keys) expect(other).not.toBe(k);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("separates models and model files (a re-trained model never shares entries)", () => {
    const k = cacheKey(target, base);
    expect(cacheKey({ modelId: "tiny-ft", modelDigest: "d1" }, base)).not.toBe(k);
    expect(cacheKey({ modelId: "tiny", modelDigest: "d2" }, base)).not.toBe(k);
    expect(k.startsWith("tiny:")).toBe(true);
  });

  it("treats equivalent spellings alike", () => {
    expect(cacheKey(target, { ...base, max_tokens: 5 })).toBe(cacheKey(target, { ...base, max_completion_tokens: 5 }));
    expect(cacheKey(target, { ...base, stop: "x" })).toBe(cacheKey(target, { ...base, stop: ["x"] }));
    const a = {
      ...base,
      response_format: { type: "json_schema" as const, json_schema: { name: "n", schema: { a: 1, b: 2 } } },
    };
    const b = {
      ...base,
      response_format: { type: "json_schema" as const, json_schema: { schema: { b: 2, a: 1 }, name: "n" } },
    };
    expect(cacheKey(target, a)).toBe(cacheKey(target, b));
  });

  it("keeps a property named __proto__ (JSON.parse makes it an own key) in the key", () => {
    const withProperty = (type: string) =>
      JSON.parse(
        `{"type":"json_schema","json_schema":{"name":"n","schema":{"properties":{"__proto__":{"type":"${type}"}}}}}`,
      ) as ChatCompletionRequest["response_format"];
    expect(cacheKey(target, { ...base, response_format: withProperty("string") })).not.toBe(
      cacheKey(target, { ...base, response_format: withProperty("number") }),
    );
  });
});

describe("decideCaching", () => {
  it("caches only deterministic requests by default", () => {
    expect(decideCaching({ temperature: 0 }, "deterministic", undefined, 1)).toEqual({ read: true, write: true });
    expect(decideCaching({ temperature: 0.7, seed: 3 }, "deterministic", undefined, 1)).toEqual({
      read: true,
      write: true,
    });
    expect(decideCaching({ temperature: 0.7 }, "deterministic", undefined, 1)).toEqual({ read: false, write: false });
    expect(decideCaching({}, "deterministic", undefined, 1)).toEqual({ read: false, write: false });
    expect(decideCaching({}, "deterministic", undefined, 0)).toEqual({ read: true, write: true });
    expect(decideCaching({ temperature: 0.7 }, "all", undefined, 1)).toEqual({ read: true, write: true });
    expect(decideCaching({ temperature: 0 }, "off", undefined, 1)).toEqual({ read: false, write: false });
  });

  it("honours cache-control", () => {
    expect(decideCaching({ temperature: 0 }, "deterministic", "no-cache", 1)).toEqual({ read: false, write: true });
    expect(decideCaching({ temperature: 0 }, "deterministic", "max-age=0, No-Store", 1)).toEqual({
      read: false,
      write: false,
    });
  });
});
