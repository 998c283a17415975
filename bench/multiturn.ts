// `npm run bench -- multiturn`: the multi-user chat workload of issue #25 against llama-server
// on the same GGUF, in the same run. USERS users chat TURNS turns each, all at once, over
// PARALLEL sequences; every turn resends the whole conversation (as chat clients do) behind one
// shared system prompt of about 300 words. What is measured is the first token: per turn
// (TTFT p50 over users) and overall, plus the wall time of the whole workload. Texts are made
// fresh per run, so neither server has seen them. Nothing asserts a timing.
//
// Settings (environment):
//   BENCH_MT_MODEL     tiny | realistic   (realistic: the 115M shape of bench/realistic-model.ts)
//   BENCH_MT_USERS     8
//   BENCH_MT_TURNS     4
//   BENCH_MT_PARALLEL  4
//   BENCH_MT_THREADS   cores - 1 (at least 1)
//   BENCH_MT_TOKENS    24        completion tokens per turn
//   BENCH_MT_SYSTEM    300 words (30 on the tiny model, whose context is 512 tokens)
//   BENCH_FLASH_ATTENTION  auto | on | off, for both servers (default auto: each server's default,
//                      which on the tiny model is off for Roundhouse and on for llama-server)
//   BENCH_MT_WARM      1: one unmeasured request with the system prompt first, as on a server
//                      that has served it before (default 0: cold, computed in the first turn)
//   BENCH_MT_SEED      the texts' seed (default: the clock), to send two runs the same texts
//   BENCH_NODE_ARGS    extra node flags for Roundhouse (e.g. --cpu-prof), as for npm run bench
//   BENCH_MT_ONLY      roundhouse | llama-server: run that target alone (an A/B of one server's
//                      settings, e.g. with BENCH_MT_SEED and BENCH_FLASH_ATTENTION)
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { newAgent } from "./load.ts";
import { ensureRealisticModel } from "./realistic-model.ts";
import { flashAttentionFromEnv, type RunningServer, startLlamaServer, startRoundhouse } from "./servers.ts";
import { freshText } from "./text.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const TINY = join(REPO_ROOT, "models", "roundhouse-tiny-q8_0.gguf");
const log = (line: string) => process.stderr.write(`${line}\n`);
const AGENT = newAgent();

interface Message {
  role: "system" | "user" | "assistant";
  content: string;
}

/** One streamed turn: milliseconds to the first content, the reply's text and its tokens. */
function turn(
  server: RunningServer,
  messages: Message[],
  maxTokens: number,
): Promise<{ ttftMs: number; reply: string; tokens: number }> {
  const body = JSON.stringify({
    model: server.model,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: maxTokens,
    temperature: 0,
    seed: 7,
  });
  const url = new URL(`${server.baseUrl}/v1/chat/completions`);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    // A fresh connection per turn, as load.ts: idle keep-alive sockets race llama-server's timeout.
    const req = request(
      url,
      {
        method: "POST",
        agent: AGENT,
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        let ttftMs = Number.NaN;
        let reply = "";
        let tokens = 0;
        let rest = "";
        let raw = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (res.statusCode !== 200) {
            raw += chunk;
            return;
          }
          const lines = (rest + chunk).split("\n");
          rest = lines.pop() ?? "";
          for (const line of lines) {
            if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
            const parsed = JSON.parse(line.slice(6)) as {
              choices?: { delta?: { content?: string } }[];
              usage?: { completion_tokens?: number } | null;
            };
            tokens = parsed.usage?.completion_tokens ?? tokens;
            const delta = parsed.choices?.[0]?.delta?.content;
            if (!delta) continue;
            if (Number.isNaN(ttftMs)) ttftMs = performance.now() - started;
            reply += delta;
          }
        });
        res.on("end", () => {
          if (res.statusCode !== 200) reject(new Error(`${server.name}: HTTP ${res.statusCode}: ${raw}`));
          else resolve({ ttftMs: Number.isNaN(ttftMs) ? performance.now() - started : ttftMs, reply, tokens });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

export interface MultiturnResult {
  target: string;
  /** TTFT p50 (ms) of each turn, over users. */
  turnP50: number[];
  overallP50: number;
  wallMs: number;
  /** Completion tokens of all turns: replies end where the model stops, so the servers' may differ. */
  completionTokens: number;
}

async function workload(
  server: RunningServer,
  w: { users: number; turns: number; maxTokens: number; systemWords: number; warm: boolean },
  seed: number,
): Promise<MultiturnResult> {
  const { users, turns, maxTokens } = w;
  const system: Message = { role: "system", content: freshText(w.systemWords, seed) };
  if (w.warm) await turn(server, [system, { role: "user", content: freshText(12, seed + 7) }], 1);
  const ttfts: number[][] = Array.from({ length: turns }, () => []);
  let completionTokens = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      const messages: Message[] = [system];
      for (let t = 0; t < turns; t++) {
        messages.push({ role: "user", content: freshText(12, seed * 1000 + u * 10 + t) });
        const { ttftMs, reply, tokens } = await turn(server, messages, maxTokens);
        (ttfts[t] as number[]).push(ttftMs);
        completionTokens += tokens;
        messages.push({ role: "assistant", content: reply });
      }
    }),
  );
  return {
    target: server.name,
    turnP50: ttfts.map(p50),
    overallP50: p50(ttfts.flat()),
    wallMs: performance.now() - started,
    completionTokens,
  };
}

function p50(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
}

export async function runMultiturnBench(): Promise<MultiturnResult[]> {
  const model = process.env.BENCH_MT_MODEL ?? "tiny";
  const users = Number(process.env.BENCH_MT_USERS ?? 8);
  const turns = Number(process.env.BENCH_MT_TURNS ?? 4);
  const parallel = Number(process.env.BENCH_MT_PARALLEL ?? 4);
  const threads = Number(process.env.BENCH_MT_THREADS ?? Math.max(1, availableParallelism() - 1));
  const maxTokens = Number(process.env.BENCH_MT_TOKENS ?? 24);
  const systemWords = Number(process.env.BENCH_MT_SYSTEM ?? (model === "realistic" ? 300 : 30));
  const contextSize = model === "realistic" ? 2048 : 512;
  const flashAttention = flashAttentionFromEnv();
  const warm = process.env.BENCH_MT_WARM === "1";
  const modelPath = model === "realistic" ? (await ensureRealisticModel(TINY, undefined, log)).path : TINY;
  const results: MultiturnResult[] = [];
  const seed = Number(process.env.BENCH_MT_SEED ?? Date.now() % 100_000);
  if (!Number.isInteger(seed)) throw new Error(`BENCH_MT_SEED: expected an integer, not ${process.env.BENCH_MT_SEED}`);
  // Each target gets its own fresh texts (another seed), so neither sees what the other was sent.
  const targets = [
    [
      "roundhouse",
      (o: Parameters<typeof startRoundhouse>[0]) =>
        startRoundhouse(o, (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean)),
    ],
    ["llama-server", (o: Parameters<typeof startLlamaServer>[0]) => startLlamaServer(o)],
  ] as const;
  const only = process.env.BENCH_MT_ONLY;
  if (only && !targets.some(([name]) => name === only)) {
    throw new Error(`BENCH_MT_ONLY: expected roundhouse or llama-server, not ${only}`);
  }
  for (const [i, [name, start]] of targets.entries()) {
    if (only && name !== only) continue;
    const workDir = mkdtempSync(join(tmpdir(), `roundhouse-mt-${name}-`));
    const server = await start({ modelPath, contextSize, parallel, threads, workDir, flashAttention });
    try {
      log(
        `${name}: ${users} users × ${turns} turns on ${parallel} sequences, ${threads} threads, flash attention ${flashAttention}${warm ? ", system prompt seen before" : ""}, seed ${seed + i} …`,
      );
      results.push(await workload(server, { users, turns, maxTokens, systemWords, warm }, seed + i));
    } finally {
      await server.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  }
  return results;
}

export function formatMultiturn(results: readonly MultiturnResult[]): string {
  const [ours, theirs] = results;
  const lines = results.map(
    (r) =>
      `${r.target.padEnd(12)} TTFT p50 per turn ${r.turnP50.map((t) => `${(t / 1000).toFixed(2)} s`).join(" / ")}; overall ${(r.overallP50 / 1000).toFixed(2)} s; wall ${(r.wallMs / 1000).toFixed(1)} s; ${r.completionTokens} completion tokens`,
  );
  if (ours && theirs) {
    const fastest = Math.min(...ours.turnP50);
    lines.push(
      `roundhouse ÷ llama-server: TTFT p50 ${(ours.overallP50 / theirs.overallP50).toFixed(2)}×, wall ${(ours.wallMs / theirs.wallMs).toFixed(2)}×; slowest turn ÷ fastest turn (roundhouse) ${(Math.max(...ours.turnP50) / fastest).toFixed(2)}×`,
    );
  }
  lines.push(
    `load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  return lines.join("\n");
}
