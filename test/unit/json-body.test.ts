// The nesting check in front of JSON.parse: it must agree with the parsed value's real depth,
// whatever the strings inside hold (brackets, quotes, escapes).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nestingExceeds } from "../../routes/json.ts";

function depth(v: unknown): number {
  if (typeof v !== "object" || v === null) return 0;
  const children = Array.isArray(v) ? v : Object.values(v);
  return 1 + Math.max(0, ...children.map(depth));
}

describe("nestingExceeds", () => {
  it("agrees with the depth of the parsed value", () => {
    const tricky = fc.oneof(fc.string(), fc.constantFrom("[", "]", "{", "}", '"', "\\", '\\"[', "\\\\", "[[[{{{"));
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: "small", withCrossShrink: true },
        tricky,
        fc.integer(),
        fc.constant(null),
        fc.array(tie("node"), { maxLength: 3 }),
        fc.dictionary(tricky, tie("node"), { maxKeys: 3 }),
      ),
    })).node;
    fc.assert(
      fc.property(value, fc.integer({ min: 0, max: 8 }), (v, limit) => {
        expect(nestingExceeds(JSON.stringify(v), limit)).toBe(depth(v) > limit);
      }),
      { numRuns: 3000 },
    );
  });

  it("scans a body nested far past the stack in one pass", () => {
    const d = 1_000_000;
    expect(nestingExceeds(`${"[".repeat(d)}${"]".repeat(d)}`, 128)).toBe(true);
    expect(nestingExceeds(`"${"[".repeat(d)}"`, 128)).toBe(false);
  });
});
