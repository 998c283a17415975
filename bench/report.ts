// Summaries of the raw runs and the printed table. Throughput is pooled over rounds
// (all tokens / all time), which weighs a noisy round no more than its duration; the
// per-round ratio range shows how much the machine drifted.
import type { LevelRun } from "./load.ts";
import type { TargetName } from "./servers.ts";

export interface TargetSummary {
  tokensPerSecond: number;
  ttftP50Ms: number | null;
  ttftP95Ms: number | null;
  meanCompletionTokens: number;
  meanPromptTokens: number;
  requests: number;
  serverCores: number | null;
  /** Cores busy elsewhere on the machine during this target's runs (time-weighted). */
  otherCores: number | null;
}

export interface LevelSummary {
  concurrency: number;
  targets: Record<TargetName, TargetSummary>;
  /** Roundhouse ÷ llama-server: above 1 is better for tokens/s, worse for TTFT. */
  ratio: { tokensPerSecond: number; ttftP50: number | null; ttftP95: number | null };
  /** Min and max of the tokens/s ratio over the rounds (each round's pair ran back to back). */
  roundRatioRange: [number, number];
}

/** Nearest-rank percentile of unsorted values; null for none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? null;
}

const mean = (xs: readonly number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

function summarise(runs: readonly LevelRun[]): TargetSummary {
  const requests = runs.flatMap((r) => r.requests);
  const ttfts = requests.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]));
  const tokens = runs.reduce((s, r) => s + r.completionTokens, 0);
  const seconds = runs.reduce((s, r) => s + r.wallMs, 0) / 1000;
  const weighted = (pick: (r: LevelRun) => number | undefined): number | null => {
    const parts = runs.flatMap((r) => {
      const v = pick(r);
      return v === undefined ? [] : [v * r.wallMs];
    });
    return parts.length === runs.length ? parts.reduce((a, b) => a + b, 0) / (seconds * 1000) : null;
  };
  return {
    tokensPerSecond: tokens / seconds,
    ttftP50Ms: percentile(ttfts, 50),
    ttftP95Ms: percentile(ttfts, 95),
    meanCompletionTokens: mean(requests.map((r) => r.completionTokens)),
    meanPromptTokens: mean(requests.map((r) => r.promptTokens)),
    requests: requests.length,
    serverCores: weighted((r) => r.serverCores),
    otherCores: weighted((r) => r.otherCores),
  };
}

const ratioOf = (a: number | null, b: number | null): number | null =>
  a === null || b === null || b === 0 ? null : a / b;

/** `runs[target][round]` for one concurrency level. */
export function summariseLevel(concurrency: number, runs: Record<TargetName, LevelRun[]>): LevelSummary {
  const sy = summarise(runs.roundhouse);
  const ls = summarise(runs["llama-server"]);
  const perRound = runs.roundhouse.map(
    (r, i) => r.tokensPerSecond / (runs["llama-server"][i]?.tokensPerSecond ?? Number.NaN),
  );
  return {
    concurrency,
    targets: { roundhouse: sy, "llama-server": ls },
    ratio: {
      tokensPerSecond: sy.tokensPerSecond / ls.tokensPerSecond,
      ttftP50: ratioOf(sy.ttftP50Ms, ls.ttftP50Ms),
      ttftP95: ratioOf(sy.ttftP95Ms, ls.ttftP95Ms),
    },
    roundRatioRange: [Math.min(...perRound), Math.max(...perRound)],
  };
}

const f0 = (x: number | null): string => (x === null ? "-" : x.toFixed(0));
const f2 = (x: number | null): string => (x === null ? "-" : x.toFixed(2));

/** A fixed-width table: SY = Roundhouse, LS = llama-server, ratios SY/LS. */
export function formatTable(title: string, levels: readonly LevelSummary[]): string {
  const header = [
    "streams",
    "SY tok/s",
    "LS tok/s",
    "ratio",
    "(rounds)",
    "SY TTFT p50",
    "LS TTFT p50",
    "ratio",
    "SY p95",
    "LS p95",
    "ratio",
    "SY cores",
    "LS cores",
    "others SY/LS",
    "tok/req SY/LS",
  ];
  const rows = levels.map((l) => {
    const sy = l.targets.roundhouse;
    const ls = l.targets["llama-server"];
    return [
      String(l.concurrency),
      f0(sy.tokensPerSecond),
      f0(ls.tokensPerSecond),
      `${f2(l.ratio.tokensPerSecond)}x`,
      `${f2(l.roundRatioRange[0])}-${f2(l.roundRatioRange[1])}`,
      `${f0(sy.ttftP50Ms)} ms`,
      `${f0(ls.ttftP50Ms)} ms`,
      `${f2(l.ratio.ttftP50)}x`,
      `${f0(sy.ttftP95Ms)} ms`,
      `${f0(ls.ttftP95Ms)} ms`,
      `${f2(l.ratio.ttftP95)}x`,
      f2(sy.serverCores),
      f2(ls.serverCores),
      `${f2(sy.otherCores)}/${f2(ls.otherCores)}`,
      `${sy.meanCompletionTokens.toFixed(0)}/${ls.meanCompletionTokens.toFixed(0)}`,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] ?? 0)).join("  ");
  return [title, line(header), ...rows.map(line)].join("\n");
}
