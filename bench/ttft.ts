// `npm run bench -- ttft`: the first token under staggered arrivals (issue #25, item 6).
// Requests arrive on their own schedule (open loop, exponential gaps around INTERVAL_MS, the same
// seeded schedule for both servers), each with a prompt neither server has seen and a short reply
// (max_tokens drawn from 8–32), so requests start and end at different times and the sequences
// they run on are taken and given back in no particular order, as on a server people use. For
// Roundhouse and llama-server on the same GGUF, started side by side and measured in alternating
// order each round: TTFT p50 / p95 over all requests, completion tokens/s over the round, and
// Roundhouse ÷ llama-server. Nothing asserts a timing.
//
// Settings (environment):
//   BENCH_TTFT_MODEL        realistic | tiny        (realistic: the 115M shape of bench/realistic-model.ts)
//   BENCH_TTFT_REQUESTS     48                      requests per round and server
//   BENCH_TTFT_INTERVAL_MS  600 (realistic), 15 (tiny)  mean gap between two arrivals
//   BENCH_TTFT_ROUNDS       2
//   BENCH_TTFT_THREADS      1
//   BENCH_PARALLEL          8                       sequences (slots) per server
//   BENCH_FLASH_ATTENTION   auto | on | off         for both servers (auto: each one's default, off
//                                                   for Roundhouse on the tiny model; off: alike)
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newAgent, type RequestResult, streamChat } from "./load.ts";
import { ensureRealisticModel } from "./realistic-model.ts";
import { percentile } from "./report.ts";
import { flashAttentionFromEnv, type RunningServer, startLlamaServer, startRoundhouse } from "./servers.ts";
import { freshText, seededRandom } from "./text.ts";

const TINY = fileURLToPath(new URL("../models/roundhouse-tiny-q8_0.gguf", import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);
const AGENT = newAgent();

interface Arrival {
  /** Milliseconds after the round starts. */
  atMs: number;
  prompt: string;
  maxTokens: number;
}

/** The round's requests: when each arrives, a prompt of 8–40 words of its own, a reply of 8–32 tokens. */
export function schedule(requests: number, intervalMs: number, seed: number): Arrival[] {
  const next = seededRandom(seed);
  const out: Arrival[] = [];
  let at = 0;
  for (let i = 0; i < requests; i++) {
    const prompt = freshText(8 + Math.floor(next() * 33), next);
    out.push({ atMs: at, prompt, maxTokens: 8 * (1 + Math.floor(next() * 4)) });
    at += -Math.log(1 - next()) * intervalMs;
  }
  return out;
}

interface RoundResult {
  target: string;
  ttftP50Ms: number;
  ttftP95Ms: number;
  tokensPerSecond: number;
  completionTokens: number;
}

async function runRound(server: RunningServer, arrivals: readonly Arrival[]): Promise<RoundResult> {
  const endpoint = { baseUrl: server.baseUrl, model: server.model, agent: AGENT, cpuSeconds: server.cpuSeconds };
  const started = performance.now();
  const results: RequestResult[] = await Promise.all(
    arrivals.map(async (a) => {
      await new Promise((resolve) => setTimeout(resolve, a.atMs));
      return streamChat(endpoint, { prompt: a.prompt, maxTokens: a.maxTokens });
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const ttfts = results.flatMap((r) => (r.ttftMs === null ? [] : [r.ttftMs]));
  const completionTokens = results.reduce((sum, r) => sum + r.completionTokens, 0);
  return {
    target: server.name,
    ttftP50Ms: percentile(ttfts, 50) ?? Number.NaN,
    ttftP95Ms: percentile(ttfts, 95) ?? Number.NaN,
    tokensPerSecond: completionTokens / seconds,
    completionTokens,
  };
}

export interface TtftBenchResult {
  model: string;
  requests: number;
  intervalMs: number;
  rounds: RoundResult[][];
}

export async function runTtftBench(): Promise<TtftBenchResult> {
  const model = process.env.BENCH_TTFT_MODEL ?? "realistic";
  const requests = Number(process.env.BENCH_TTFT_REQUESTS ?? 48);
  const intervalMs = Number(process.env.BENCH_TTFT_INTERVAL_MS ?? (model === "tiny" ? 15 : 600));
  const rounds = Number(process.env.BENCH_TTFT_ROUNDS ?? 2);
  const modelPath = model === "realistic" ? (await ensureRealisticModel(TINY, undefined, log)).path : TINY;
  const options = {
    modelPath,
    contextSize: 512,
    parallel: Number(process.env.BENCH_PARALLEL ?? 8),
    threads: Number(process.env.BENCH_TTFT_THREADS ?? 1),
    flashAttention: flashAttentionFromEnv(),
  };
  const dirs = [mkdtempSync(join(tmpdir(), "roundhouse-ttft-")), mkdtempSync(join(tmpdir(), "roundhouse-ttft-"))];
  const servers: RunningServer[] = [];
  const result: TtftBenchResult = { model, requests, intervalMs, rounds: [] };
  try {
    servers.push(await startRoundhouse({ ...options, workDir: dirs[0] as string }));
    servers.push(await startLlamaServer({ ...options, workDir: dirs[1] as string }));
    // One unmeasured request each: the first decode allocates buffers.
    for (const s of servers) await runRound(s, schedule(1, 0, 1));
    for (let round = 0; round < rounds; round++) {
      // A new schedule (new prompts) per round; the same for both servers within it.
      const arrivals = schedule(requests, intervalMs, 1000 + round);
      const order = round % 2 === 0 ? servers : [...servers].reverse();
      const measured: RoundResult[] = [];
      for (const s of order) {
        const r = await runRound(s, arrivals);
        log(
          `  round ${round + 1}/${rounds}  ${s.name.padEnd(12)} TTFT p50 ${r.ttftP50Ms.toFixed(0)} ms  p95 ${r.ttftP95Ms.toFixed(0)} ms  ${r.tokensPerSecond.toFixed(0)} tok/s`,
        );
        measured.push(r);
      }
      result.rounds.push(measured);
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
  return result;
}

export function formatTtft(result: TtftBenchResult): string {
  const lines = [
    `${result.model} model, ${result.requests} requests per round, arrivals every ${result.intervalMs} ms on average, replies of 8-32 tokens; ratio = Roundhouse ÷ llama-server, same round`,
    "round  SY TTFT p50  LS TTFT p50  ratio  SY p95  LS p95  ratio  SY tok/s  LS tok/s  ratio",
  ];
  for (const [i, round] of result.rounds.entries()) {
    const ours = round.find((r) => r.target === "roundhouse");
    const theirs = round.find((r) => r.target === "llama-server");
    if (!ours || !theirs) continue;
    const ms = (v: number) => `${v.toFixed(0)} ms`.padStart(11);
    const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`.padStart(6);
    lines.push(
      `${String(i + 1).padStart(5)}  ${ms(ours.ttftP50Ms)}  ${ms(theirs.ttftP50Ms)}  ${ratio(ours.ttftP50Ms, theirs.ttftP50Ms)}` +
        `  ${ms(ours.ttftP95Ms).slice(4)}  ${ms(theirs.ttftP95Ms).slice(4)}  ${ratio(ours.ttftP95Ms, theirs.ttftP95Ms)}` +
        `  ${ours.tokensPerSecond.toFixed(0).padStart(8)}  ${theirs.tokensPerSecond.toFixed(0).padStart(8)}  ${ratio(ours.tokensPerSecond, theirs.tokensPerSecond)}`,
    );
  }
  lines.push(
    `load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  return lines.join("\n");
}
