// `npm run bench -- embeddings`: Roundhouse's /v1/embeddings against llama-server's
// (`--embeddings`) on the same GGUF, both as their own processes, the same threads and
// sequences; `npm run bench -- rerank`: /rerank against llama-server's (`--reranking`) on the
// built-in reranker, documents per request in place of inputs. For each concurrency (clients
// sending requests back to back) and batch size (inputs or documents per request), the two
// targets run the same requests in alternating order for several rounds, so that drift on a
// noisy machine hits both alike. Printed: inputs/s each and Roundhouse ÷ llama-server per level.
// Nothing here asserts a timing.
//
// Settings (environment variables):
//   BENCH_EMBED_MODEL        tiny   embeddings: tiny (the built-in embedding model) or realistic
//                                   (the ~115M bench shape, bench/realistic-model.ts, mean-pooled)
//   BENCH_EMBED_CONCURRENCY  1,16   concurrent clients
//   BENCH_EMBED_BATCH        1,32   inputs (documents) per request
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
import { writeEmbeddingModel } from "../scripts/model/embedding-model.ts";
import { ensureRealisticModel } from "./realistic-model.ts";
import { installCleanup, type RunningServer, startLlamaServer, startRoundhouse } from "./servers.ts";

const modelFile = (name: string) => fileURLToPath(new URL(`../models/${name}`, import.meta.url));

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
const FACTS = buildFacts();
const TEXTS = FACTS.flatMap((f) => f.asks);
const REPLIES = FACTS.map((f) => f.reply);

/** One request of `batch` items: its path, its body, and how many items its answer must hold. */
interface Workload {
  operation: "embeddings" | "rerank";
  path: string;
  body(model: string, texts: string[]): object;
  count(answer: { data?: unknown[]; results?: unknown[] }): number | undefined;
}

const WORKLOADS: Record<Workload["operation"], Workload> = {
  embeddings: {
    operation: "embeddings",
    path: "/v1/embeddings",
    body: (model, input) => ({ model, input, encoding_format: "float" }),
    count: (answer) => answer.data?.length,
  },
  // One query against `batch` documents (fact replies, each tagged so no two requests repeat).
  rerank: {
    operation: "rerank",
    path: "/rerank",
    body: (model, texts) => ({
      model,
      query: texts[0],
      documents: texts.map((t, i) => `${REPLIES[i % REPLIES.length]} ${t}`),
    }),
    count: (answer) => answer.results?.length,
  },
};

/** Items/s for `concurrency` clients each sending `settings.requests` requests of `batch` items. */
async function level(
  work: Workload,
  server: RunningServer,
  agent: Agent,
  concurrency: number,
  batch: number,
  round: number,
) {
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, client) => {
      for (let r = 0; r < settings.requests; r++) {
        // Different texts every request and round: neither server may answer from a cache.
        const base = (round * 7919 + client * 131 + r * 17) * batch;
        const texts = Array.from(
          { length: batch },
          (_, i) => `${TEXTS[(base + i) % TEXTS.length]} (${round}.${client}.${r}.${i})`,
        );
        const res = await request(`${server.baseUrl}${work.path}`, {
          method: "POST",
          dispatcher: agent,
          headers: { "content-type": "application/json", "cache-control": "no-store" },
          body: JSON.stringify(work.body(server.model, texts)),
        });
        const body = (await res.body.json()) as { data?: unknown[]; results?: unknown[] };
        if (res.statusCode !== 200 || work.count(body) !== batch) {
          throw new Error(`${server.name} answered ${res.statusCode}: ${JSON.stringify(body).slice(0, 300)}`);
        }
      }
    }),
  );
  return (concurrency * settings.requests * batch) / ((performance.now() - started) / 1000);
}

/** The GGUF to serve: the built-in reranker, the built-in embedding model, or the realistic shape mean-pooled. */
async function modelFor(operation: Workload["operation"], workDir: string): Promise<string> {
  if (operation === "rerank") return modelFile("roundhouse-tiny-rerank-f16.gguf");
  if ((process.env.BENCH_EMBED_MODEL ?? "tiny") === "tiny") return modelFile("roundhouse-tiny-embed-q8_0.gguf");
  const realistic = await ensureRealisticModel(modelFile("roundhouse-tiny-q8_0.gguf"));
  const pooled = join(workDir, "realistic-embed.gguf");
  await writeEmbeddingModel(realistic.path, pooled);
  return pooled;
}

export async function runEmbeddingsBench(operation: Workload["operation"] = "embeddings"): Promise<void> {
  installCleanup();
  const work = WORKLOADS[operation];
  const workDir = mkdtempSync(join(tmpdir(), "roundhouse-bench-embed-"));
  const options = {
    modelPath: await modelFor(operation, workDir),
    contextSize: 512,
    parallel: settings.parallel,
    threads: settings.threads,
    operation,
  };
  const servers = [await startRoundhouse({ ...options, workDir }), await startLlamaServer({ ...options, workDir })];
  const agent = new Agent({ connections: 64 });
  try {
    // Warm-up, not measured: Roundhouse makes a model's embedding or ranking context on its first request.
    for (const server of servers) await level(work, server, agent, 1, 4, -1);
    console.log(
      `${operation}: ${options.modelPath}, ${settings.parallel} sequences, ${settings.threads} thread(s), ${settings.rounds} rounds`,
    );
    console.log(
      `clients | batch | Roundhouse ${operation === "rerank" ? "documents" : "inputs"}/s | llama-server | ratio (per round)`,
    );
    for (const concurrency of settings.concurrency) {
      for (const batch of settings.batch) {
        const rates: Record<string, number[]> = { roundhouse: [], "llama-server": [] };
        for (let round = 0; round < settings.rounds; round++) {
          const order = round % 2 === 0 ? servers : [...servers].reverse();
          for (const server of order)
            rates[server.name]?.push(await level(work, server, agent, concurrency, batch, round));
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
