import { describe, expect, it } from "vitest";
import type { RollbackRuleSpec, VariantSpec } from "../../src/config/experiments.ts";
import { ModelLoadError, QueueFullError, QueueTimeoutError } from "../../src/engine/errors.ts";
import { ApiError } from "../../src/openai/errors.ts";
import { canFallBack, fallbackOrder, firstAdmitted } from "../../src/traffic/fallback.ts";
import { evaluateRollback, metricOf, type Sample } from "../../src/traffic/rollback.ts";
import { SampleWindows } from "../../src/traffic/window.ts";

const NOW = 1_000_000;
const rule = (extra: Partial<RollbackRuleSpec>): RollbackRuleSpec => ({
  metric: "error_rate",
  max: undefined,
  maxVsControl: undefined,
  minRequests: 10,
  windowMs: 60_000,
  ...extra,
});
const ok = (latencyMs: number, at = NOW - 1000, ttftMs?: number): Sample => ({ at, failed: false, latencyMs, ttftMs });
const failed = (at = NOW - 1000): Sample => ({ at, failed: true, latencyMs: undefined, ttftMs: undefined });
const many = (n: number, make: (i: number) => Sample) => Array.from({ length: n }, (_, i) => make(i));

describe("evaluateRollback", () => {
  it("waits for min_requests, then trips on an absolute error rate above max", () => {
    const rules = [rule({ max: 0.2 })];
    expect(
      evaluateRollback(
        rules,
        many(9, () => failed()),
        [],
        NOW,
      ),
    ).toBeUndefined();
    const trip = evaluateRollback(rules, [...many(7, () => ok(10)), ...many(3, () => failed())], [], NOW);
    expect(trip).toMatchObject({ observed: 0.3, threshold: 0.2, controlValue: undefined, counts: { variant: 10 } });
    // At the bound is not above it.
    expect(evaluateRollback(rules, [...many(8, () => ok(10)), ...many(2, () => failed())], [], NOW)).toBeUndefined();
  });

  it("only counts samples inside the window", () => {
    const rules = [rule({ max: 0.2 })];
    const old = many(10, () => failed(NOW - 61_000));
    expect(evaluateRollback(rules, [...old, ...many(10, () => ok(5))], [], NOW)).toBeUndefined();
  });

  it("compares p95 latency with control's, once both have min_requests", () => {
    const rules = [rule({ metric: "latency_p95_ms", maxVsControl: 2, minRequests: 20 })];
    const slow = many(20, (i) => ok(300 + i));
    const control = many(20, (i) => ok(100 + i));
    // Control has too few samples: not judged.
    expect(evaluateRollback(rules, slow, control.slice(0, 19), NOW)).toBeUndefined();
    const trip = evaluateRollback(rules, slow, control, NOW);
    // Nearest-rank p95 of 20 values is the 19th: 318 against 2 · 118.
    expect(trip).toMatchObject({
      observed: 318,
      threshold: 236,
      controlValue: 118,
      counts: { variant: 20, control: 20 },
    });
    expect(
      evaluateRollback(
        rules,
        many(20, (i) => ok(200 + i)),
        control,
        NOW,
      ),
    ).toBeUndefined();
  });

  it("counts only successful samples for latency and TTFT", () => {
    const samples = [...many(5, () => failed()), ok(50, NOW - 1, 7), ok(70, NOW - 1)];
    expect(metricOf("latency_p95_ms", samples)).toEqual({ value: 70, n: 2 });
    expect(metricOf("ttft_p95_ms", samples)).toEqual({ value: 7, n: 1 });
    expect(metricOf("error_rate", samples)).toEqual({ value: 5 / 7, n: 7 });
    expect(metricOf("error_rate", [])).toEqual({ value: null, n: 0 });
  });

  it("returns the first rule that trips", () => {
    const rules = [rule({ metric: "ttft_p95_ms", max: 1000 }), rule({ max: 0.1 }), rule({ max: 0.05 })];
    expect(
      evaluateRollback(
        rules,
        many(10, () => failed()),
        [],
        NOW,
      )?.rule,
    ).toBe(rules[1]);
  });
});

describe("fallbacks", () => {
  const variant = (name: string, models: string[], fallback = true): VariantSpec => ({
    name,
    models,
    weight: 1,
    canary: name !== "control",
    fallback,
    rollback: [],
  });

  it("orders the variant's models, then control's not yet tried, unless fallback is off", () => {
    const control = variant("control", ["a", "b"]);
    expect(fallbackOrder(variant("canary", ["c", "a"]), control)).toEqual(["c", "a", "b"]);
    expect(fallbackOrder(variant("canary", ["c"], false), control)).toEqual(["c"]);
    expect(fallbackOrder(control, control)).toEqual(["a", "b"]);
  });

  it("falls back on load failures and full or slow queues only", () => {
    expect(canFallBack(new ModelLoadError("m", "no file"))).toBe(true);
    expect(canFallBack(new QueueFullError("m", 1))).toBe(true);
    expect(canFallBack(new QueueTimeoutError("m", 10))).toBe(true);
    expect(canFallBack(new ApiError(400, "too long"))).toBe(false);
  });

  it("tries each target in turn and reports each fallback", async () => {
    const seen: string[] = [];
    const result = await firstAdmitted(
      ["a", "b", "c"],
      async (t) => {
        if (t !== "c") throw new ModelLoadError(t, "broken");
        return "served";
      },
      (from, to) => seen.push(`${from}->${to}`),
    );
    expect(result).toEqual({ target: "c", result: "served" });
    expect(seen).toEqual(["a->b", "b->c"]);
  });

  it("stops at a failure that is the request's own, and rethrows the last failure", async () => {
    const refuse = new ApiError(400, "too long");
    await expect(
      firstAdmitted(
        ["a", "b"],
        () => Promise.reject(refuse),
        () => {},
      ),
    ).rejects.toBe(refuse);
    const last = new QueueFullError("b", 1);
    const failing = (t: string) => Promise.reject(t === "a" ? new ModelLoadError("a", "x") : last);
    await expect(firstAdmitted(["a", "b"], failing, () => {})).rejects.toBe(last);
  });
});

describe("SampleWindows", () => {
  it("drops samples older than the horizon and beyond the count bound", () => {
    const w = new SampleWindows(3);
    for (let i = 0; i < 5; i++) w.add("e", "v", ok(i, 1000 + i), 10_000);
    expect(w.get("e", "v").map((s) => s.latencyMs)).toEqual([2, 3, 4]);
    w.add("e", "v", ok(9, 20_000), 10_000);
    expect(w.get("e", "v").map((s) => s.latencyMs)).toEqual([9]);
    expect(w.get("e", "v", 20_000)).toEqual([]);
    w.clear("e", "v");
    expect(w.get("e", "v")).toEqual([]);
  });

  it("keeps exactly the bound at scale, newest last, while removing dropped samples in batches", () => {
    const w = new SampleWindows(1000);
    for (let i = 0; i < 5000; i++) {
      w.add("e", "v", ok(i, i), 1_000_000);
      const kept = w.get("e", "v");
      expect(kept.length).toBe(Math.min(i + 1, 1000));
      expect(kept[0]?.latencyMs).toBe(Math.max(0, i - 999));
      expect(kept.at(-1)?.latencyMs).toBe(i);
    }
    // Samples past the age bound are dropped by age too.
    w.add("e", "v", ok(9999, 5000 + 500), 400);
    expect(w.get("e", "v").map((s) => s.latencyMs)).toEqual([9999]);
  });
});
