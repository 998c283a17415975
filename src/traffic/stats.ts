// The significance tests behind experiment results: a two-proportion z-test for error rates
// and a Mann–Whitney U test for latencies, both with the normal approximation (the samples of
// an experiment are large; exact tables would add nothing but code). Pure functions.

/** Significance level of every verdict. */
export const ALPHA = 0.05;

/** better/worse: the variant differs from control at ALPHA; inconclusive: no evidence either way. */
export type Verdict = "better" | "worse" | "inconclusive";

/**
 * erfc(x), Numerical Recipes' Chebyshev fit (erfcc, 2nd ed. §6.2): fractional error below
 * 1.2e-7 everywhere, so even tiny p-values keep their digits, unlike 1 - erf(x).
 */
export function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/** Two-sided p-value of a standard normal statistic. */
export function twoSidedP(z: number): number {
  return Math.min(1, erfc(Math.abs(z) / Math.SQRT2));
}

export interface ProportionTest {
  /** Variant's rate minus control's. */
  difference: number;
  z: number;
  p_value: number;
}

/**
 * Pooled two-proportion z-test of x1/n1 (variant) against x2/n2 (control). Null when a side
 * has no samples. When the pooled rate is 0 or 1 both sides are identical: z 0, p 1.
 */
export function twoProportionZTest(x1: number, n1: number, x2: number, n2: number): ProportionTest | null {
  if (n1 <= 0 || n2 <= 0) return null;
  const p1 = x1 / n1;
  const p2 = x2 / n2;
  const pooled = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return { difference: p1 - p2, z: 0, p_value: 1 };
  const z = (p1 - p2) / se;
  return { difference: p1 - p2, z, p_value: twoSidedP(z) };
}

export interface RankTest {
  /** U of the variant's sample: the number of (variant, control) pairs where the variant is larger, ties counting ½. */
  u: number;
  /** U / (n1 n2): the probability a variant value exceeds a control value (0.5 = no difference). */
  effect: number;
  z: number;
  p_value: number;
}

/**
 * Mann–Whitney U test of `a` (variant) against `b` (control), two-sided, normal approximation
 * with the tie correction of the variance and a continuity correction of ½, as
 * scipy.stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=True). Null when a side
 * is empty. O((n1 + n2) log(n1 + n2)).
 */
export function mannWhitneyU(a: readonly number[], b: readonly number[]): RankTest | null {
  const n1 = a.length;
  const n2 = b.length;
  if (n1 === 0 || n2 === 0) return null;
  const n = n1 + n2;
  // Indexes < n1 are a's values; sorting indexes avoids allocating a pair per value.
  const values = new Float64Array(n);
  values.set(a, 0);
  values.set(b, n1);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => (values[i] as number) - (values[j] as number));
  let rankSumA = 0;
  let tieTerm = 0;
  for (let start = 0; start < n; ) {
    let end = start + 1;
    while (end < n && values[order[end] as number] === values[order[start] as number]) end++;
    // Positions start..end-1 share the average of ranks start+1..end.
    const rank = (start + 1 + end) / 2;
    const t = end - start;
    tieTerm += t * t * t - t;
    for (let k = start; k < end; k++) if ((order[k] as number) < n1) rankSumA += rank;
    start = end;
  }
  const u = rankSumA - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  const variance = ((n1 * n2) / 12) * (n + 1 - tieTerm / (n * (n - 1)));
  if (variance <= 0) return { u, effect: u / (n1 * n2), z: 0, p_value: 1 };
  const distance = Math.max(0, Math.abs(u - mean) - 0.5);
  const z = (Math.sign(u - mean) * distance) / Math.sqrt(variance);
  return { u, effect: u / (n1 * n2), z, p_value: twoSidedP(z) };
}

/**
 * Lower is better for both error rates and latencies: a significant positive difference
 * (z > 0: the variant's rate or ranks are higher) is worse.
 */
export function verdictOf(test: { z: number; p_value: number } | null, alpha = ALPHA): Verdict {
  if (test === null || test.p_value >= alpha || test.z === 0) return "inconclusive";
  return test.z > 0 ? "worse" : "better";
}

/** Worse when any test says worse, better when one says better and none worse. */
export function overallVerdict(verdicts: readonly Verdict[]): Verdict {
  if (verdicts.includes("worse")) return "worse";
  return verdicts.includes("better") ? "better" : "inconclusive";
}
