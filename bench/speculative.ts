// `npm run bench -- speculative`: speculative decoding (models.yaml `speculative`) against the
// same server without it, on the same GGUF in the same run: single-stream tokens/s and TTFT,
// interleaved rounds. Two workloads: the tiny model on the questions it was trained on (its
// answers echo them: "The capital of France is Paris."), and the 115M shape, whose random output
// copies nothing (what a miss costs). Nothing asserts a timing.
//
// BENCH_SPEC_METHOD=draft drafts with another model instead of prompt lookup: for the tiny model
// its Q4_0 file, for the 115M shape the model itself (every drafted token holds: the most a draft
// could gain where checking k tokens in one batch costs what it costs here).
//
// Settings (environment): BENCH_SPEC_ROUNDS (3), BENCH_SPEC_TOKENS (tokens guessed per step: 3
// for prompt lookup, 4 for a draft), BENCH_SPEC_MODELS (tiny,realistic), BENCH_SPEC_METHOD
// (prompt_lookup | draft), BENCH_SPEC_DRAFT (another draft GGUF for both models).
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Endpoint, newAgent, runLevel } from "./load.ts";
import { ensureRealisticModel } from "./realistic-model.ts";
import { type RunningServer, startRoundhouse } from "./servers.ts";

const TINY = fileURLToPath(new URL("../models/roundhouse-tiny-q8_0.gguf", import.meta.url));
const TINY_Q4 = fileURLToPath(new URL("../models/roundhouse-tiny-q4_0.gguf", import.meta.url));
const log = (line: string) => process.stderr.write(`${line}\n`);

const QUESTIONS = [
  "What is the capital of France?",
  "What is the opposite of hot?",
  "What colour is the sky?",
  "What sound does a dog make?",
  "What is the capital of Japan?",
  "What is the opposite of up?",
  "What colour is grass?",
  "What is 7 plus 5?",
];

export interface SpeculativeRow {
  model: string;
  plain: { tokensPerSecond: number; ttftMs: number };
  method: string;
  guessing: { tokensPerSecond: number; ttftMs: number };
}

export async function runSpeculativeBench(): Promise<SpeculativeRow[]> {
  const rounds = Number(process.env.BENCH_SPEC_ROUNDS ?? 3);
  const method = process.env.BENCH_SPEC_METHOD === "draft" ? "draft" : "prompt_lookup";
  const maxTokens = Number(process.env.BENCH_SPEC_TOKENS ?? (method === "draft" ? 4 : 3));
  const which = (process.env.BENCH_SPEC_MODELS ?? "tiny,realistic").split(",");
  const rows: SpeculativeRow[] = [];
  for (const name of which) {
    const modelPath = name === "realistic" ? (await ensureRealisticModel(TINY, undefined, log)).path : TINY;
    const replyTokens = name === "realistic" ? 64 : 32;
    const workDir = mkdtempSync(join(tmpdir(), "roundhouse-spec-"));
    const servers: RunningServer[] = [];
    try {
      const base = { modelPath, contextSize: 512, parallel: 1, threads: 1 };
      servers.push(await startRoundhouse({ ...base, workDir: mkdtempSync(join(workDir, "plain-")) }));
      servers.push(
        await startRoundhouse({
          ...base,
          workDir: mkdtempSync(join(workDir, "guessing-")),
          modelExtra: {
            speculative:
              method === "draft"
                ? {
                    method,
                    model: process.env.BENCH_SPEC_DRAFT ?? (name === "realistic" ? modelPath : TINY_Q4),
                    max_tokens: maxTokens,
                  }
                : { method, max_tokens: maxTokens },
          },
        }),
      );
      const endpoints: Endpoint[] = servers.map((s) => ({
        baseUrl: s.baseUrl,
        model: s.model,
        agent: newAgent(),
        cpuSeconds: s.cpuSeconds,
      }));
      type Total = { tokens: number; ms: number; ttft: number[] };
      const plain: Total = { tokens: 0, ms: 0, ttft: [] };
      const guessing: Total = { tokens: 0, ms: 0, ttft: [] };
      const spec = (i: number) => ({ prompt: QUESTIONS[i % QUESTIONS.length] ?? "Hello", maxTokens: replyTokens });
      for (let round = 0; round < rounds; round++) {
        for (const [i, endpoint] of (round % 2 === 0 ? endpoints : [...endpoints].reverse()).entries()) {
          const k = round % 2 === 0 ? i : endpoints.length - 1 - i;
          const run = await runLevel(endpoint, 1, QUESTIONS.length, spec);
          const t = k === 0 ? plain : guessing;
          t.tokens += run.completionTokens;
          t.ms += run.wallMs;
          for (const r of run.requests) if (r.ttftMs !== null) t.ttft.push(r.ttftMs);
          log(
            `  ${name} round ${round + 1}/${rounds} ${k === 0 ? "plain" : method} ${run.tokensPerSecond.toFixed(0)} tok/s`,
          );
        }
      }
      const summary = (t: Total) => ({
        tokensPerSecond: (t.tokens / t.ms) * 1000,
        ttftMs: [...t.ttft].sort((a, b) => a - b)[Math.floor((t.ttft.length - 1) / 2)] ?? Number.NaN,
      });
      rows.push({ model: name, plain: summary(plain), method, guessing: summary(guessing) });
    } finally {
      for (const s of servers) await s.stop();
      rmSync(workDir, { recursive: true, force: true });
    }
  }
  return rows;
}

export function formatSpeculative(rows: readonly SpeculativeRow[]): string {
  const lines = rows.map(
    (r) =>
      `${r.model.padEnd(10)} plain ${r.plain.tokensPerSecond.toFixed(0)} tok/s, TTFT p50 ${r.plain.ttftMs.toFixed(0)} ms; ${r.method} ${r.guessing.tokensPerSecond.toFixed(0)} tok/s, TTFT p50 ${r.guessing.ttftMs.toFixed(0)} ms; ${r.method} ÷ plain ${(r.guessing.tokensPerSecond / r.plain.tokensPerSecond).toFixed(2)}× tok/s`,
  );
  lines.push(
    `load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  return lines.join("\n");
}
