// `npm run bench -- embeddings`: Roundhouse's /v1/embeddings against llama-server's
// (`--embeddings`) on the same GGUF (the built-in embedding model), both as their own
// processes, the same threads and sequences. For each concurrency (clients sending requests
// back to back) and batch size (inputs per request), the two targets run the same requests in
// alternating order for several rounds, so that drift on a noisy machine hits both alike.
// Printed: inputs/s each and Roundhouse ÷ llama-server per level. Nothing here asserts a timing.
//
// Settings (environment variables):
//   BENCH_EMBED_CONCURRENCY  1,16   concurrent clients
//   BENCH_EMBED_BATCH        1,32   inputs per request
//   BENCH_ROUNDS             3      interleaved rounds per level
//   BENCH_EMBED_REQUESTS     8      requests each client sends per level and round
//   BENCH_PARALLEL           4      sequences per server
//   BENCH_THREADS            1      threads per server
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";
import { buildFacts } from "../scripts/model/corpus.ts";
import { installCleanup, type RunningServer, startLlamaServer, startRoundhouse } from "./servers.ts";

const MODEL = fileURLToPath(new URL("../models/roundhouse-tiny-embed-q8_0.gguf", import.meta.url));

const list = (name: string, fallback: string) => (process.env[name] ?? fallback).split(",").map(Number);
const settings = {
  concurrency: list("BENCH_EMBED_CONCURRENCY", "1,16"),
  batch: list("BENCH_EMBED_BATCH", "1,32"),
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  requests: Number(process.env.BENCH_EMBED_REQUESTS ?? 8),
  parallel: Number(process.env.BENCH_PARALLEL ?? 4),
  threads: Number(process.env.BENCH_THREADS ?? 1),
};

/** Texts of the training facts, so inputs are the lengths real questions have. */
const TEXTS = buildFacts().flatMap((f) => f.asks);

/** Inputs/s for `concurrency` clients each sending `settings.requests` requests of `batch` inputs. */
async function level(server: RunningServer, agent: Agent, concurrency: number, batch: number, round: number) {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      for (let r = 0; r < settings.requests; r++) {
        // Different texts every request and round: neither server may answer from a cache.
        const base = (round * 7919 + client * 131 + r * 17) * batch;
        const input = Array.from(
          { length: batch },
          (_, i) => `${TEXTS[(base + i) % TEXTS.length]} (${round}.${client}.${r}.${i})`,
        );
        const res = await request(`${server.baseUrl}/v1/embeddings`, {
          method: "POST",
          dispatcher: agent,
          headers: { "content-type": "application/json", "cache-control": "no-store" },
          body: JSON.stringify({ model: server.model, input, encoding_format: "float" }),
        });
        const body = (await res.body.json()) as { data?: unknown[] };
        if (res.statusCode !== 200 || body.data?.length !== batch) {
          throw new Error(`${server.name} answered ${res.statusCode}: ${JSON.stringify(body).slice(0, 300)}`);
        }
      }
    }),
  );
  return (concurrency * settings.requests * batch) / ((performance.now() - started) / 1000);
}

export async function runEmbeddingsBench(): Promise<void> {
  installCleanup();
  const workDir = mkdtempSync(join(tmpdir(), "roundhouse-bench-embed-"));
  const options = {
    modelPath: MODEL,
    contextSize: 512,
    parallel: settings.parallel,
    threads: settings.threads,
    embeddings: true,
  };
  const servers = [await startRoundhouse({ ...options, workDir }), await startLlamaServer({ ...options, workDir })];
  const agent = new Agent({ connections: 64 });
  try {
    // Warm-up, not measured: Roundhouse makes a model's embedding context on its first request.
    for (const server of servers) await level(server, agent, 1, 4, -1);
    console.log(
      `embeddings: ${MODEL}, ${settings.parallel} sequences, ${settings.threads} thread(s), ${settings.rounds} rounds`,
    );
    console.log("clients | batch | Roundhouse inputs/s | llama-server inputs/s | ratio (per round)");
    for (const concurrency of settings.concurrency) {
      for (const batch of settings.batch) {
        const rates: Record<string, number[]> = { roundhouse: [], "llama-server": [] };
        for (let round = 0; round < settings.rounds; round++) {
          const order = round % 2 === 0 ? servers : [...servers].reverse();
          for (const server of order) rates[server.name]?.push(await level(server, agent, concurrency, batch, round));
        }
        const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
        const ours = rates.roundhouse ?? [];
        const theirs = rates["llama-server"] ?? [];
        const ratios = ours.map((x, i) => x / (theirs[i] as number));
        console.log(
          `${concurrency} | ${batch} | ${mean(ours).toFixed(0)} | ${mean(theirs).toFixed(0)} | ` +
            `${(mean(ours) / mean(theirs)).toFixed(2)}× (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`,
        );
      }
    }
  } finally {
    await agent.close();
    for (const server of servers) await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
}
