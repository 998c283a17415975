// The benchmarks' fresh text: a run's users and requests must each get their own (multiturn.ts
// once gave all 8 users the same messages, so they shared whole conversations).
import { describe, expect, it } from "vitest";
import { freshText } from "../../bench/text.ts";
import { schedule } from "../../bench/ttft.ts";

describe("freshText", () => {
  it("gives every user-turn of a multi-turn run its own text, at seeds of the size a run uses", () => {
    for (const seed of [1, 54_321, 99_999]) {
      const texts = new Set<string>();
      for (let user = 0; user < 8; user++) {
        for (let turn = 0; turn < 4; turn++) texts.add(freshText(12, seed * 1000 + user * 10 + turn));
      }
      expect(texts.size).toBe(32);
    }
  });

  it("is the same text for the same seed, and uses many words", () => {
    expect(freshText(30, 7)).toBe(freshText(30, 7));
    expect(new Set(freshText(200, 7).slice(0, -1).split(" ")).size).toBeGreaterThan(15);
  });
});

describe("the ttft bench's schedule", () => {
  it("is the same for the same seed, arrives in order, and no two prompts are alike", () => {
    const a = schedule(48, 600, 1000);
    expect(schedule(48, 600, 1000)).toEqual(a);
    expect(new Set(a.map((r) => r.prompt)).size).toBe(48);
    for (let i = 1; i < a.length; i++) expect(a[i]?.atMs).toBeGreaterThanOrEqual(a[i - 1]?.atMs ?? 0);
    expect(a.every((r) => r.maxTokens >= 8 && r.maxTokens <= 32)).toBe(true);
  });
});
