import { describe, expect, it } from "vitest";
import { assignmentKey, assignVariant, pick, pointOf, type WeightedVariant } from "../../src/traffic/assignment.ts";

const split = (weights: Record<string, number>): WeightedVariant[] =>
  Object.entries(weights).map(([name, weight]) => ({ name, weight }));

const noRandom = () => {
  throw new Error("a keyed assignment must not use randomness");
};

function assign(variants: WeightedVariant[], key: string | undefined, forced?: string) {
  return assignVariant({ experiment: "chat", variants, control: "control", key, forced, random: noRandom });
}

function shares(variants: WeightedVariant[], keys: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < keys; i++) {
    const a = assign(variants, `user-${i}`);
    if (!a.ok) throw new Error("unexpected");
    counts[a.variant] = (counts[a.variant] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, (100 * v) / keys]));
}

describe("assignVariant", () => {
  it("splits 10,000 keys within 2 points of the weights", () => {
    const ninety = shares(split({ control: 90, canary: 10 }), 10_000);
    expect(Math.abs((ninety.control ?? 0) - 90)).toBeLessThanOrEqual(2);
    expect(Math.abs((ninety.canary ?? 0) - 10)).toBeLessThanOrEqual(2);
    const three = shares(split({ control: 50, b: 30, c: 20 }), 10_000);
    expect(Math.abs((three.control ?? 0) - 50)).toBeLessThanOrEqual(2);
    expect(Math.abs((three.b ?? 0) - 30)).toBeLessThanOrEqual(2);
    expect(Math.abs((three.c ?? 0) - 20)).toBeLessThanOrEqual(2);
  });

  it("gives a key the same variant every time, and depends on the experiment", () => {
    const variants = split({ control: 50, canary: 50 });
    for (let i = 0; i < 100; i++) expect(assign(variants, `k${i}`)).toEqual(assign(variants, `k${i}`));
    expect(pointOf("chat", "alice")).toBe(pointOf("chat", "alice"));
    expect(pointOf("chat", "alice")).not.toBe(pointOf("search", "alice"));
  });

  it("lets a forced variant win over the key, and refuses an unknown one", () => {
    const variants = split({ control: 100, canary: 0 });
    expect(assign(variants, "alice", "canary")).toEqual({ ok: true, variant: "canary", by: "forced" });
    expect(assign(variants, "alice", "nope")).toEqual({ ok: false, unknownVariant: "nope" });
  });

  it("sends everyone to control when every weight is 0", () => {
    expect(assign(split({ control: 0, canary: 0 }), "alice")).toMatchObject({ variant: "control" });
  });

  it("moves only the canary's keys when the canary is rolled back", () => {
    const before = split({ control: 90, canary: 10 });
    const after = split({ control: 90, canary: 0 });
    for (let i = 0; i < 2000; i++) {
      const was = assign(before, `u${i}`);
      const now = assign(after, `u${i}`);
      expect(now).toMatchObject({ variant: "control" });
      if (was.ok && was.variant === "control") expect(now).toEqual(was);
    }
  });

  it("draws a random point without a key", () => {
    const variants = split({ control: 50, canary: 50 });
    const low = assignVariant({
      experiment: "e",
      variants,
      control: "control",
      key: undefined,
      forced: undefined,
      random: () => 0.1,
    });
    const high = assignVariant({
      experiment: "e",
      variants,
      control: "control",
      key: undefined,
      forced: undefined,
      random: () => 0.9,
    });
    expect([low, high]).toEqual([
      { ok: true, variant: "control", by: "random" },
      { ok: true, variant: "canary", by: "random" },
    ]);
  });
});

describe("pick and assignmentKey", () => {
  it("skips zero weights and covers [0, 1)", () => {
    const variants = split({ a: 1, b: 0, c: 3 });
    expect(pick(variants, 0)).toBe("a");
    expect(pick(variants, 0.2499)).toBe("a");
    expect(pick(variants, 0.25)).toBe("c");
    expect(pick(variants, 0.999999)).toBe("c");
    expect(pick(split({ a: 0 }), 0.5)).toBeUndefined();
  });

  it("takes the header, else user, else safety_identifier; blank is absent", () => {
    expect(assignmentKey("h", "u")).toBe("h");
    expect(assignmentKey(undefined, "u")).toBe("u");
    expect(assignmentKey(" ", null, "s")).toBe("s");
    expect(assignmentKey(undefined, null, undefined)).toBeUndefined();
  });
});
