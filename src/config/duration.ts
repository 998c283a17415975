// Durations as people write them in models.yaml: "90s", "5m", "1h", "7d", "250ms", or seconds.
export const DURATION_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i;

const MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "5m" → 300000; a number is seconds. Undefined for text DURATION_PATTERN rejects. */
export function parseDurationMs(value: number | string): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const match = DURATION_PATTERN.exec(value);
  if (match === null) return undefined;
  const unit = MS[(match[2] ?? "s").toLowerCase()];
  return unit === undefined ? undefined : Number(match[1]) * unit;
}
