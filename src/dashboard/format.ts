// How figures read on the page.

export const percent = (v: number) => `${(v * 100).toFixed(v < 0.1 && v > 0 ? 1 : 0)}%`;
export function ms(v: number): string {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)} s`;
  return `${v.toFixed(v >= 10 || v === 0 ? 0 : v >= 1 ? 1 : 2)} ms`;
}
export const rate = (v: number) => (v >= 100 ? v.toFixed(0) : Number(v.toPrecision(2)).toString());
export const fixed = (digits: number) => (v: number) => v.toFixed(digits);

export function bytes(n: number | null): string {
  if (n === null) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v >= 10 || i === 0 ? 0 : 1)} ${units[i]}`;
}

export const orDash = (v: number | null | undefined, f: (v: number) => string) =>
  v === null || v === undefined ? "—" : f(v);

export const time = (iso: string | number) =>
  new Date(typeof iso === "number" ? iso * 1000 : iso).toLocaleString(undefined, { hour12: false });

/** The ranges a user can pick, in seconds. */
export const RANGES: { label: string; seconds: number }[] = [
  { label: "15 min", seconds: 900 },
  { label: "1 hour", seconds: 3600 },
  { label: "6 hours", seconds: 21_600 },
  { label: "24 hours", seconds: 86_400 },
  { label: "7 days", seconds: 604_800 },
];
