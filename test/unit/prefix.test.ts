import { describe, expect, it } from "vitest";
import { MIN_RESTORE_GAIN, MIN_SAVE_TOKENS, planPrefix } from "../../src/engine/prefix.ts";
import { commonPrefix } from "../../src/engine/prompt-cache.ts";

const fresh = { held: 0, heldPrefix: 0, heldSaved: false };

describe("planPrefix", () => {
  it("loads the source that starts the prompt with the most tokens", () => {
    const plan = planPrefix(
      fresh,
      [
        { source: "a", commonPrefix: 100 },
        { source: "b", commonPrefix: 300 },
        { source: "c", commonPrefix: 200 },
      ],
      400,
    );
    expect(plan).toEqual({ restore: "b", save: false });
  });

  it("keeps what the sequence holds unless a source beats it by MIN_RESTORE_GAIN", () => {
    const own = { held: 300, heldPrefix: 200, heldSaved: true };
    const near = [{ source: "s", commonPrefix: 200 + MIN_RESTORE_GAIN - 1 }];
    expect(planPrefix(own, near, 400).restore).toBeUndefined();
    const far = [{ source: "s", commonPrefix: 200 + MIN_RESTORE_GAIN }];
    expect(planPrefix(own, far, 400).restore).toBe("s");
  });

  it("counts no more of a prefix than the prompt less its last token, which is always computed again", () => {
    // Both hold the whole prompt and more: the sequence's own is as good.
    const own = { held: 150, heldPrefix: 100, heldSaved: true };
    expect(planPrefix(own, [{ source: "s", commonPrefix: 150 }], 101).restore).toBeUndefined();
  });

  it("saves a conversation the request would overwrite, unless a saved state covers it or it is short", () => {
    const sources = [{ source: "s", commonPrefix: 0 }];
    expect(planPrefix({ held: 200, heldPrefix: 10, heldSaved: false }, sources, 300).save).toBe(true);
    expect(planPrefix({ held: 200, heldPrefix: 10, heldSaved: true }, sources, 300).save).toBe(false);
    expect(planPrefix({ held: MIN_SAVE_TOKENS - 1, heldPrefix: 0, heldSaved: false }, sources, 300).save).toBe(false);
  });

  it("does not save a sequence whose tokens the request keeps, nearly all", () => {
    // The next turn of the same conversation: it loses nothing worth a save.
    expect(planPrefix({ held: 200, heldPrefix: 199, heldSaved: false }, [], 260).save).toBe(false);
    // Replaced by a loaded state: everything it held would go.
    const plan = planPrefix(
      { held: 200, heldPrefix: 150, heldSaved: false },
      [{ source: "s", commonPrefix: 250 }],
      260,
    );
    expect(plan).toEqual({ restore: "s", save: true });
  });
});

describe("planPrefix: a start another sequence is computing", () => {
  it("waits for it when it will hold MIN_RESTORE_GAIN more of the prompt than anything holds now", () => {
    const computing = { source: "busy", commonPrefix: 0, promised: 300 };
    expect(planPrefix(fresh, [computing, { source: "idle", commonPrefix: 100 }], 400)).toEqual({
      wait: "busy",
      restore: undefined,
      save: false,
    });
  });

  it("does not wait for less, and takes what is there instead", () => {
    const computing = { source: "busy", commonPrefix: 0, promised: 100 + MIN_RESTORE_GAIN - 1 };
    const plan = planPrefix(fresh, [computing, { source: "idle", commonPrefix: 100 }], 400);
    expect(plan.wait).toBeUndefined();
    expect(plan.restore).toBe("idle");
  });

  it("stops waiting once the computing sequence holds it: it is then copied", () => {
    const done = { source: "busy", commonPrefix: 300, promised: 300 };
    expect(planPrefix(fresh, [done], 400)).toEqual({ wait: undefined, restore: "busy", save: false });
  });
});

describe("commonPrefix", () => {
  it("counts the tokens two lists share from the start", () => {
    expect(commonPrefix([1, 2, 3], [1, 2, 4, 5])).toBe(2);
    expect(commonPrefix([1, 2], [1, 2, 3])).toBe(2);
    expect(commonPrefix([], [1])).toBe(0);
    expect(commonPrefix([9], [1])).toBe(0);
  });
});
