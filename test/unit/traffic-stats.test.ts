// The experiment statistics against reference values worked out by hand (derivations in the
// comments) and cross-checked with scipy 1.17 (stats.mannwhitneyu(x, y, method="asymptotic",
// use_continuity=True); 2 * stats.norm.sf(|z|) for the z-test).
import { describe, expect, it } from "vitest";
import {
  erfc,
  mannWhitneyU,
  overallVerdict,
  twoProportionZTest,
  twoSidedP,
  verdictOf,
} from "../../src/traffic/stats.ts";

describe("normal tail", () => {
  it("matches known values of erfc and two-sided p", () => {
    // erfc(0) = 1; 2·Φ(−1.959964) = 0.05; 2·Φ(−3) = 0.0026997960632601913; 2·Φ(−5) = 5.733031437583866e-07.
    expect(erfc(0)).toBeCloseTo(1, 7);
    expect(twoSidedP(1.959964)).toBeCloseTo(0.05, 6);
    expect(twoSidedP(-3)).toBeCloseTo(0.0026997960632601913, 8);
    expect(twoSidedP(5) / 5.733031437583866e-7).toBeCloseTo(1, 5);
    expect(twoSidedP(0)).toBe(1);
  });
});

describe("twoProportionZTest", () => {
  it("matches a hand computation: 20/200 against 40/200", () => {
    // p1 = 0.10, p2 = 0.20, pooled p = 60/400 = 0.15
    // se = sqrt(0.15 · 0.85 · (1/200 + 1/200)) = sqrt(0.001275) = 0.0357071
    // z = (0.10 − 0.20) / 0.0357071 = −2.800560; p = 2·Φ(−2.800560) = 0.0051014
    const t = twoProportionZTest(20, 200, 40, 200);
    expect(t?.difference).toBeCloseTo(-0.1, 12);
    expect(t?.z).toBeCloseTo(-2.8005601680560193, 9);
    expect(t?.p_value).toBeCloseTo(0.0051013996460049825, 7);
    expect(verdictOf(t)).toBe("better");
  });

  it("matches a hand computation that is not significant: 30/1000 against 18/1000", () => {
    // pooled p = 48/2000 = 0.024; se = sqrt(0.024 · 0.976 · 0.002) = 0.0068445
    // z = 0.012 / 0.0068445 = 1.753217; p = 0.0795647
    const t = twoProportionZTest(30, 1000, 18, 1000);
    expect(t?.z).toBeCloseTo(1.7532171832956915, 9);
    expect(t?.p_value).toBeCloseTo(0.0795647345931905, 7);
    expect(verdictOf(t)).toBe("inconclusive");
  });

  it("has no test without samples, and no difference when neither side ever failed", () => {
    expect(twoProportionZTest(0, 0, 1, 10)).toBeNull();
    expect(twoProportionZTest(0, 50, 0, 80)).toEqual({ difference: 0, z: 0, p_value: 1 });
  });
});

describe("mannWhitneyU", () => {
  it("matches the tortoise-and-hare example (no ties)", () => {
    // Finishing order T H H H H H T T T T T H (Wikipedia, "Mann–Whitney U test", illustration),
    // positions as values. U_T counts (tortoise, hare) pairs where the tortoise is larger:
    // 0 + 5·5 = 25 (U_H = 36 − 25 = 11). Mean n1·n2/2 = 18, variance n1·n2·(n+1)/12 = 39,
    // z = (25 − 18 − 0.5)/√39 = 1.040833, p = 2·Φ(−1.040833) = 0.297953.
    const tortoises = [1, 7, 8, 9, 10, 11];
    const hares = [2, 3, 4, 5, 6, 12];
    const t = mannWhitneyU(tortoises, hares);
    expect(t?.u).toBe(25);
    expect(t?.effect).toBeCloseTo(25 / 36, 12);
    expect(t?.z).toBeCloseTo(6.5 / Math.sqrt(39), 9);
    expect(t?.p_value).toBeCloseTo(0.2979530616081678, 7);
    expect(mannWhitneyU(hares, tortoises)?.u).toBe(11);
  });

  it("matches a hand computation with ties", () => {
    // a = 1 2 2 3 5, b = 2 3 4 4 6 7. Ranks of the 11 values: 1→1, the three 2s → 3, the two
    // 3s → 5.5, the two 4s → 7.5, 5→9, 6→10, 7→11. R_a = 1 + 3 + 3 + 5.5 + 9 = 21.5,
    // U_a = 21.5 − 5·6/2 = 6.5. Ties Σ(t³ − t) = 24 + 6 + 6 = 36, so the variance is
    // (30/12)·(12 − 36/110) = 29.181818; z = −(|6.5 − 15| − 0.5)/√29.181818 = −1.480932,
    // p = 0.138626.
    const t = mannWhitneyU([1, 2, 2, 3, 5], [2, 3, 4, 4, 6, 7]);
    expect(t?.u).toBe(6.5);
    expect(t?.z).toBeCloseTo(-8 / Math.sqrt((30 / 12) * (12 - 36 / 110)), 9);
    expect(t?.p_value).toBeCloseTo(0.13862587987892763, 7);
    expect(verdictOf(t)).toBe("inconclusive");
  });

  it("says worse for a clearly slower variant and better for a clearly faster one", () => {
    const fast = Array.from({ length: 200 }, (_, i) => 100 + (i % 20));
    const slow = Array.from({ length: 200 }, (_, i) => 130 + (i % 20));
    expect(verdictOf(mannWhitneyU(slow, fast))).toBe("worse");
    expect(verdictOf(mannWhitneyU(fast, slow))).toBe("better");
  });

  it("has no test for an empty side, and p 1 when every value ties", () => {
    expect(mannWhitneyU([], [1, 2])).toBeNull();
    expect(mannWhitneyU([5, 5], [5, 5, 5])?.p_value).toBe(1);
  });
});

describe("overallVerdict", () => {
  it("is worse when any test is worse, better when one is better and none worse", () => {
    expect(overallVerdict(["better", "worse"])).toBe("worse");
    expect(overallVerdict(["better", "inconclusive"])).toBe("better");
    expect(overallVerdict(["inconclusive", "inconclusive"])).toBe("inconclusive");
  });
});
