import { describe, expect, it } from "vitest";
import {
  CPU_MIN_HEAD_SIZE,
  contextFlashAttention,
  flashAttentionFor,
  headSize,
} from "../../src/engine/flash-attention.ts";

describe("flash attention setting", () => {
  it("turns auto off on the CPU for heads narrower than 64, and leaves it to llama.cpp from 64", () => {
    expect(CPU_MIN_HEAD_SIZE).toBe(64);
    expect(flashAttentionFor("auto", true, 16)).toBe(false);
    expect(flashAttentionFor("auto", true, 32)).toBe(false);
    expect(flashAttentionFor("auto", true, 64)).toBe("auto");
    expect(flashAttentionFor("auto", true, 128)).toBe("auto");
  });

  it("leaves auto to llama.cpp on a GPU or when the head size is unknown", () => {
    expect(flashAttentionFor("auto", false, 16)).toBe("auto");
    expect(flashAttentionFor("auto", true, undefined)).toBe("auto");
  });

  it("keeps an explicit true or false", () => {
    expect(flashAttentionFor(true, true, 16)).toBe(true);
    expect(flashAttentionFor(false, true, 128)).toBe(false);
    expect(flashAttentionFor(false, false, 128)).toBe(false);
  });
});

describe("a context's flash attention on a runtime", () => {
  const tiny = { embedding_length: 128, attention: { head_count: 8 } };
  it("is the CPU's rule without a GPU or with every layer kept off it", () => {
    expect(contextFlashAttention(undefined, false, "auto", tiny)).toBe(false);
    expect(contextFlashAttention("auto", "cuda", 0, tiny)).toBe(false);
  });

  it("is llama.cpp's auto with layers on a GPU", () => {
    expect(contextFlashAttention(undefined, "cuda", "auto", tiny)).toBe("auto");
    expect(contextFlashAttention("auto", "vulkan", 12, tiny)).toBe("auto");
  });
});

describe("head size", () => {
  it("is key_length when the GGUF has it, else embedding length over heads", () => {
    expect(headSize({ embedding_length: 4096, attention: { head_count: 32, key_length: 256 } })).toBe(256);
    expect(headSize({ embedding_length: 128, attention: { head_count: 8 } })).toBe(16);
    expect(headSize({ embedding_length: 768, attention: { head_count: 12, key_length: 0 } })).toBe(64);
  });

  it("takes the first layer's heads when they are given per layer", () => {
    expect(headSize({ embedding_length: 1280, attention: { head_count: [20, 10, 40] } })).toBe(64);
  });

  it("is unknown without heads or embedding length", () => {
    expect(headSize(undefined)).toBeUndefined();
    expect(headSize({ embedding_length: 768 })).toBeUndefined();
    expect(headSize({ attention: { head_count: 12 } })).toBeUndefined();
    expect(headSize({ embedding_length: 768, attention: { head_count: [] } })).toBeUndefined();
  });
});
