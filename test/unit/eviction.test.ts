import { describe, expect, it } from "vitest";
import { type LoadedModelState, planEviction } from "../../src/engine/eviction.ts";

const m = (id: string, bytes: number, lastUsed: number, inFlight = 0): LoadedModelState => ({
  id,
  bytes,
  lastUsed,
  inFlight,
});

describe("planEviction", () => {
  it("evicts nothing when the new model fits", () => {
    expect(planEviction({ id: "c", bytes: 10 }, [m("a", 10, 1)], { memoryBudget: 100 })).toEqual({
      ok: true,
      evict: [],
    });
  });

  it("evicts the least recently used idle models until the budget fits", () => {
    const loaded = [m("a", 40, 3), m("b", 40, 1), m("c", 40, 2)];
    expect(planEviction({ id: "d", bytes: 50 }, loaded, { memoryBudget: 130 })).toEqual({ ok: true, evict: ["b"] });
    expect(planEviction({ id: "d", bytes: 50 }, loaded, { memoryBudget: 100 })).toEqual({
      ok: true,
      evict: ["b", "c"],
    });
  });

  it("never evicts a model with requests in flight", () => {
    const loaded = [m("a", 40, 1, 2), m("b", 40, 2)];
    expect(planEviction({ id: "c", bytes: 50 }, loaded, { memoryBudget: 100 })).toEqual({ ok: true, evict: ["b"] });
  });

  it("refuses when only busy models stand in the way", () => {
    const plan = planEviction({ id: "c", bytes: 50 }, [m("a", 60, 1, 1)], { memoryBudget: 100 });
    expect(plan.ok).toBe(false);
    if (!plan.ok) expect(plan.reason).toContain("a");
  });

  it("respects max_loaded_models", () => {
    const loaded = [m("a", 1, 2), m("b", 1, 1)];
    expect(planEviction({ id: "c", bytes: 1 }, loaded, { maxLoadedModels: 2 })).toEqual({ ok: true, evict: ["b"] });
  });

  it("refuses a model larger than the whole budget", () => {
    const plan = planEviction({ id: "big", bytes: 200 }, [], { memoryBudget: 100 });
    expect(plan).toMatchObject({ ok: false });
  });

  it("does not count the target itself when it is already loaded", () => {
    expect(planEviction({ id: "a", bytes: 60 }, [m("a", 60, 1)], { memoryBudget: 100, maxLoadedModels: 1 })).toEqual({
      ok: true,
      evict: [],
    });
  });
});
