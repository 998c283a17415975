// Figures the reliability suites measure (requests sent, failures by kind, memory, recovery
// times), printed as one block per suite so `npm run test:stress` reads as a report. Printed,
// never asserted on: timings and memory vary from machine to machine and run to run.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** True under `npm run test:stress`: the suites run at full size instead of CI's shorter one. */
export const STRESS = process.env.ROUNDHOUSE_STRESS === "1";

export function report(title: string, figures: Record<string, unknown>): void {
  const width = Math.max(...Object.keys(figures).map((k) => k.length));
  const lines = Object.entries(figures).map(([k, v]) => `  ${k.padEnd(width)}  ${format(v)}`);
  console.log(`\n== ${title} ==\n${lines.join("\n")}\n`);
}

function format(v: unknown): string {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Heap in use after full collections, so what is measured is what is still referenced. */
export async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().heapUsed;
}

// V8's gc(), reached without --expose-gc on the command line (vitest starts the worker).
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

/** A seeded generator (mulberry32): a run's random choices replay from its printed seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Polls `check` until it holds or `deadlineMs` passes; returns how long that took (ms), or undefined. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  deadlineMs: number,
): Promise<number | undefined> {
  const start = performance.now();
  while (performance.now() - start < deadlineMs) {
    if (await check()) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 10));
  }
  return (await check()) ? performance.now() - start : undefined;
}
