// `npm run bench -- prefill-stall`: do running streams keep flowing while a long prompt arrives?
// (issue #25, item 1). STREAMS requests generate long replies; once they all flow, one request
// with a PROMPT_WORDS-word prompt arrives. Measured for Roundhouse and llama-server on the same
// GGUF, one after the other: the running streams' longest gap between two content chunks while
// the long prompt is computed (against their median gap), and the long request's TTFT.
// Nothing asserts a timing.
//
// The 115M shape by default: its random replies rarely end early, so the streams keep running.
// Settings (environment): BENCH_STALL_MODEL tiny | realistic (realistic), BENCH_STALL_STREAMS (3),
// BENCH_STALL_WORDS (400), BENCH_STALL_THREADS (cores - 1), BENCH_STALL_BATCH (Roundhouse's batch_size),
// BENCH_FLASH_ATTENTION.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newAgent, streamChat } from "./load.ts";
import { ensureRealisticModel } from "./realistic-model.ts";
import { flashAttentionFromEnv, type RunningServer, startLlamaServer, startRoundhouse } from "./servers.ts";

const TINY = fileURLToPath(new URL("../models/roundhouse-tiny-q8_0.gguf", import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);
const AGENT = newAgent();
const WORDS = "harbour lantern orchard meadow copper river station garden signal ferry market window".split(" ");

/** Streams one chat completion; resolves with the time (performance.now()) of every content chunk. */
async function contentTimes(server: RunningServer, prompt: string, maxTokens: number): Promise<number[]> {
  const times: number[] = [];
  const endpoint = { baseUrl: server.baseUrl, model: server.model, agent: AGENT, cpuSeconds: server.cpuSeconds };
  await streamChat(endpoint, { prompt, maxTokens }, (at) => times.push(at));
  return times;
}

export interface StallResult {
  target: string;
  /** Median gap between two chunks of the running streams before the long prompt arrived (ms). */
  medianGapMs: number;
  /** Longest gap of any running stream while the long prompt was computed (ms). */
  maxGapMs: number;
  /** The long request's time to its first chunk (ms). */
  longTtftMs: number;
}

async function measure(server: RunningServer, streams: number, words: number): Promise<StallResult> {
  const running = Array.from({ length: streams }, (_, i) =>
    contentTimes(server, `Tell me a long story, number ${i}.`, 300),
  );
  await new Promise((r) => setTimeout(r, 1500));
  const long = Array.from({ length: words }, (_, i) => WORDS[(i * 7) % WORDS.length]).join(" ");
  const sent = performance.now();
  const longTimes = await contentTimes(server, long, 8);
  const firstLong = longTimes[0] ?? performance.now();
  const all = await Promise.all(running);
  const gaps = (times: number[], from: number, to: number) =>
    times.slice(1).flatMap((t, i) => (t >= from && (times[i] as number) <= to ? [t - (times[i] as number)] : []));
  const before = all.flatMap((t) => gaps(t, 0, sent)).sort((a, b) => a - b);
  const during = all.flatMap((t) => gaps(t, sent, firstLong));
  return {
    target: server.name,
    medianGapMs: before[Math.floor(before.length / 2)] ?? Number.NaN,
    maxGapMs: Math.max(0, ...during),
    longTtftMs: firstLong - sent,
  };
}

export async function runStallBench(): Promise<StallResult[]> {
  const model = process.env.BENCH_STALL_MODEL ?? "realistic";
  const streams = Number(process.env.BENCH_STALL_STREAMS ?? 3);
  const words = Number(process.env.BENCH_STALL_WORDS ?? 400);
  const threads = Number(process.env.BENCH_STALL_THREADS ?? Math.max(1, availableParallelism() - 1));
  const modelPath = model === "realistic" ? (await ensureRealisticModel(TINY, undefined, log)).path : TINY;
  const options = {
    modelPath,
    contextSize: 2048,
    parallel: streams + 1,
    threads,
    flashAttention: flashAttentionFromEnv(),
  };
  // BENCH_STALL_BATCH: Roundhouse's batch_size (prompt tokens per decode; llama-server keeps its own).
  const batch = process.env.BENCH_STALL_BATCH;
  const results: StallResult[] = [];
  for (const start of [startRoundhouse, startLlamaServer]) {
    const workDir = mkdtempSync(join(tmpdir(), "roundhouse-stall-"));
    const server = await start({
      ...options,
      workDir,
      ...(batch ? { modelExtra: { batch_size: Number(batch) } } : {}),
    });
    try {
      log(`${server.name}: ${streams} running streams, then a ${words}-word prompt …`);
      results.push(await measure(server, streams, words));
    } finally {
      await server.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  }
  return results;
}

export function formatStall(results: readonly StallResult[]): string {
  const lines = results.map(
    (r) =>
      `${r.target.padEnd(12)} running streams: median gap ${r.medianGapMs.toFixed(0)} ms, longest while the long prompt was computed ${r.maxGapMs.toFixed(0)} ms; long prompt's TTFT ${r.longTtftMs.toFixed(0)} ms`,
  );
  const [ours, theirs] = results;
  if (ours && theirs) {
    lines.push(
      `roundhouse ÷ llama-server: longest gap ${(ours.maxGapMs / theirs.maxGapMs).toFixed(2)}×, long prompt's TTFT ${(ours.longTtftMs / theirs.longTtftMs).toFixed(2)}×`,
    );
  }
  lines.push(
    `load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  return lines.join("\n");
}
