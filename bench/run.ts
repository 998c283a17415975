// `npm run bench`: Roundhouse's HTTP API against llama-server on the same GGUF, at the
// same concurrency, measured in the same run. `npm run bench -- upstream` runs the upstream
// overhead benchmark instead (bench/upstream.ts: Roundhouse and Portkey's gateway in front of
// a fake OpenAI-compatible server); `npm run bench -- embeddings` /v1/embeddings against
// llama-server's (bench/embeddings.ts; `-- rerank` /rerank the same way); `npm run bench --
// finetune` the fine-tuning benchmark (bench/finetune.ts: llama-finetune on the tiny, 115M and
// 0.5B-class shapes); `npm run bench -- finetune-answer` a real job on the 115M shape and
// whether it answers what it was trained on (bench/finetune-answer.ts); `npm run bench --
// multiturn` the multi-user, multi-turn chat workload against llama-server (bench/multiturn.ts);
// `npm run bench -- speculative` prompt lookup against the same server without it
// (bench/speculative.ts); `npm run bench -- ttft` the first token under staggered arrivals and
// short replies (bench/ttft.ts); `npm run bench -- flash-attention` what flash attention costs
// per prompt chunk on this machine (bench/flash-attention.ts).
//
// For each model and thread count both servers are started as their own processes
// (Roundhouse: `node --import tsx src/main.ts` with a generated models.yaml; llama-server
// with the equivalent -c/--parallel/-t), then for several rounds, for each concurrency,
// the two targets run the same streaming requests back to back, in alternating order, so
// that drift on a noisy machine hits both alike. Printed per level: aggregate completion
// tokens/s, TTFT p50/p95 (time to the first chunk with content), cores each server kept
// busy, and Roundhouse ÷ llama-server ratios. Raw results: bench/results/latest.json.
// Nothing here asserts a timing; the numbers are for people to read.
//
// Models:
//   tiny       models/roundhouse-tiny-q8_0.gguf (npm run make-model), 64-token replies,
//              real reply lengths (the model ends its replies itself).
//   realistic  ~115M-parameter llama, random weights, the tiny model's tokenizer, Q8_0,
//              written on first use and cached under ~/.cache/roundhouse/bench
//              (ROUNDHOUSE_CACHE_DIR moves it); 128-token replies, always full length.
//
// Settings (environment variables; the defaults take 3-5 minutes on 2 cores):
//   BENCH_MODELS               tiny,realistic   which models, comma-separated
//   BENCH_THREADS              1                thread counts to run, e.g. 1,2 (same for both servers)
//   BENCH_CONCURRENCY          1,4,8            concurrent streams per level
//   BENCH_ROUNDS               3                interleaved rounds per level
//   BENCH_REQUESTS_PER_STREAM  2                requests each stream sends per level and round
//   BENCH_MAX_TOKENS           128              max_tokens for the realistic model
//   BENCH_TINY_MAX_TOKENS      64               max_tokens for the tiny model
//   BENCH_PARALLEL             8                sequences (slots) per server
//   BENCH_CONTEXT_SIZE         512              tokens per sequence
//   BENCH_TINY_MODEL           (see above)      another GGUF for "tiny"; its tokenizer also feeds "realistic"
//   BENCH_REALISTIC_SHAPE      768,12,12,3072   n_embd,n_layer,n_head,n_ff (multiples of 32)
//   BENCH_LLAMA_SERVER_ARGS    (none)           extra llama-server flags, space-separated
//   BENCH_LLAMA_SERVER         (npm run tools)  another llama-server binary to compare against
//   BENCH_FLASH_ATTENTION      auto             auto | on | off, for both servers; auto is each one's
//                                               default, which differs on the tiny model (heads of
//                                               16: off for Roundhouse, on for llama-server), so
//                                               off compares the two configured alike there
//   BENCH_PROMPT_CACHE         (on)             off: Roundhouse without saved conversation states
//   BENCH_NODE_ARGS            (none)           extra node flags for Roundhouse, e.g. to profile it:
//                                               "--cpu-prof --cpu-prof-dir=/tmp/sy-prof"
//
// Read the numbers with three caveats. (1) Other work on the machine: the "others" column
// shows cores busy outside the two servers and the bench; llama-server with -t equal to
// the core count collapses (5-10 tok/s) when anything else competes, so run on an idle
// machine. (2) The engines are different builds of the same llama.cpp: Roundhouse runs
// node-llama-cpp's prebuilt binary (a CPU-specific variant picked at run time, no OpenMP),
// llama-server is the `npm run tools` build (GGML_NATIVE=OFF, OpenMP). On 2-core AVX-512
// machines with 1 thread the prebuilt engine decodes 8-token batches faster than even a
// -march=native llama-server, so a ratio above 1 at 8 streams is mostly the engine binary,
// not the serving layer (BENCH_LLAMA_SERVER points at another build to check). (3) The
// "cores" columns show what each server really used: a configured thread count is a cap.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { busyCores } from "./cpu.ts";
import { runEmbeddingsBench } from "./embeddings.ts";
import { formatFinetuneRows, runFinetuneBench } from "./finetune.ts";
import { formatFinetuneAnswer, runFinetuneAnswerBench } from "./finetune-answer.ts";
import { formatFlashAttention, runFlashAttentionBench } from "./flash-attention.ts";
import { type Endpoint, type LevelRun, newAgent, type RequestSpec, runLevel } from "./load.ts";
import { formatMultiturn, runMultiturnBench } from "./multiturn.ts";
import { formatStall, runStallBench } from "./prefill-stall.ts";
import { DEFAULT_SHAPE, ensureRealisticModel, type RealisticShape } from "./realistic-model.ts";
import { formatTable, type LevelSummary, summariseLevel } from "./report.ts";
import {
  flashAttentionFromEnv,
  installCleanup,
  type RunningServer,
  type ServeOptions,
  startLlamaServer,
  startRoundhouse,
  type TargetName,
} from "./servers.ts";
import { formatSpeculative, runSpeculativeBench } from "./speculative.ts";
import { formatTtft, runTtftBench } from "./ttft.ts";
import { runUpstreamBench } from "./upstream.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, "bench", "results");
const TINY_DEFAULT = join(REPO_ROOT, "models", "roundhouse-tiny-q8_0.gguf");
/** An untrained F32 model with the tiny model's tokenizer, for development before the
 * real tiny model exists. */
const TINY_FALLBACK = "/tmp/sy-random.gguf";

// ---------------------------------------------------------------- settings

interface Settings {
  models: ("tiny" | "realistic")[];
  threads: number[];
  concurrency: number[];
  rounds: number;
  requestsPerStream: number;
  maxTokens: number;
  tinyMaxTokens: number;
  parallel: number;
  contextSize: number;
  tinyModel: string | undefined;
  realisticShape: RealisticShape;
  llamaServerArgs: string[];
  llamaServer: string | undefined;
  nodeArgs: string[];
}

function intList(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const values = raw.split(",").map((s) => Number(s.trim()));
  if (values.some((v) => !Number.isInteger(v) || v < 1))
    throw new Error(`${name}: expected positive integers, got "${raw}"`);
  return values;
}

function int(name: string, fallback: number): number {
  const [v] = intList(name, [fallback]);
  return v ?? fallback;
}

const words = (raw: string | undefined): string[] => (raw ?? "").split(/\s+/).filter((a) => a.length > 0);

function settings(): Settings {
  const models = (process.env.BENCH_MODELS ?? "tiny,realistic").split(",").map((s) => s.trim());
  for (const m of models) if (m !== "tiny" && m !== "realistic") throw new Error(`BENCH_MODELS: unknown model "${m}"`);
  const shape = intList("BENCH_REALISTIC_SHAPE", [
    DEFAULT_SHAPE.nEmbd,
    DEFAULT_SHAPE.nLayer,
    DEFAULT_SHAPE.nHead,
    DEFAULT_SHAPE.nFf,
  ]);
  const [nEmbd, nLayer, nHead, nFf] = shape;
  if (nEmbd === undefined || nLayer === undefined || nHead === undefined || nFf === undefined || shape.length !== 4) {
    throw new Error("BENCH_REALISTIC_SHAPE: expected n_embd,n_layer,n_head,n_ff");
  }
  const s: Settings = {
    models: models as Settings["models"],
    threads: intList("BENCH_THREADS", [1]),
    concurrency: intList("BENCH_CONCURRENCY", [1, 4, 8]),
    rounds: int("BENCH_ROUNDS", 3),
    requestsPerStream: int("BENCH_REQUESTS_PER_STREAM", 2),
    maxTokens: int("BENCH_MAX_TOKENS", 128),
    tinyMaxTokens: int("BENCH_TINY_MAX_TOKENS", 64),
    parallel: int("BENCH_PARALLEL", 8),
    contextSize: int("BENCH_CONTEXT_SIZE", 512),
    tinyModel: process.env.BENCH_TINY_MODEL,
    realisticShape: { nEmbd, nLayer, nHead, nFf },
    llamaServerArgs: words(process.env.BENCH_LLAMA_SERVER_ARGS),
    llamaServer: process.env.BENCH_LLAMA_SERVER,
    nodeArgs: words(process.env.BENCH_NODE_ARGS),
  };
  const most = Math.max(...s.concurrency);
  if (most > s.parallel) throw new Error(`BENCH_CONCURRENCY ${most} exceeds BENCH_PARALLEL ${s.parallel}`);
  return s;
}

// ---------------------------------------------------------------- requests

/** Short questions of the kinds the tiny model was trained on (corpus.ts), so its replies
 * are real ones; for the random model any text will do. */
const PROMPTS = [
  "What is the capital of France?",
  "Count from 1 to 10.",
  "Tell me a short story about a cat.",
  "What is 7 plus 5?",
  "Spell the word cat.",
  "What colour is the sky?",
  "What is the opposite of hot?",
  "Hello! How are you today?",
  "What is the capital of Japan?",
  "What sound does a dog make?",
  "What is 3 times 4?",
  "Tell me a short story about a fox.",
  "What colour is grass?",
  "What is the opposite of up?",
  "Spell the word dog.",
  "Count from 5 to 15.",
];

function specs(round: number, level: number, maxTokens: number): (index: number) => RequestSpec {
  // Every request's prompt is new to both servers (both reuse a sequence's cached prefix, and a
  // repeat would flatter TTFT): a tag of its own in front of the question. The questions were
  // repeated from one level to the next before, and TTFT p50 at 8 streams then swung between
  // 0.44x and 1.25x from run to run, depending on which requests found their prompt cached.
  return (index) => ({
    prompt: `(${round}.${level}.${index}) ${PROMPTS[(index + round * 5) % PROMPTS.length] ?? "Hello"}`,
    maxTokens,
  });
}

// ---------------------------------------------------------------- one model × thread count

interface ModelInfo {
  name: "tiny" | "realistic";
  path: string;
  description: string;
  maxTokens: number;
}

interface CaseResult {
  model: ModelInfo;
  threads: number;
  levels: LevelSummary[];
  raw: { round: number; concurrency: number; target: TargetName; run: LevelRun }[];
}

const TARGETS: TargetName[] = ["roundhouse", "llama-server"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const progress = (line: string) => process.stderr.write(`${line}\n`);

async function runCase(s: Settings, model: ModelInfo, threads: number, workRoot: string): Promise<CaseResult> {
  const workDir = mkdtempSync(join(workRoot, `${model.name}-t${threads}-`));
  const serve: ServeOptions = {
    modelPath: model.path,
    contextSize: s.contextSize,
    parallel: s.parallel,
    threads,
    workDir,
    flashAttention: flashAttentionFromEnv(),
  };
  const servers: RunningServer[] = [];
  try {
    progress(`[${model.name}, ${threads} thread(s)] starting Roundhouse and llama-server …`);
    // One at a time: both load the model, and two loads on two cores would slow each other.
    servers.push(await startRoundhouse(serve, s.nodeArgs));
    servers.push(await startLlamaServer(serve, s.llamaServerArgs, s.llamaServer));
    const endpoints = new Map<TargetName, Endpoint>(
      servers.map((srv) => [
        srv.name,
        { baseUrl: srv.baseUrl, model: srv.model, agent: newAgent(), cpuSeconds: srv.cpuSeconds },
      ]),
    );
    const endpoint = (t: TargetName): Endpoint => {
      const e = endpoints.get(t);
      if (!e) throw new Error(`no endpoint for ${t}`);
      return e;
    };

    // Warm-up, unmeasured: first-use costs (lazy compilation, page faults of the weights,
    // every sequence touched once) should not land in the first measured level.
    for (const t of TARGETS) await runLevel(endpoint(t), Math.max(...s.concurrency), 1, specs(99, 0, 8));

    const raw: CaseResult["raw"] = [];
    for (let round = 0; round < s.rounds; round++) {
      for (const [ci, concurrency] of s.concurrency.entries()) {
        // Alternate which target goes first, so neither always runs on the warmer machine.
        const order = (round + ci) % 2 === 0 ? TARGETS : [...TARGETS].reverse();
        for (const target of order) {
          // Let the other server's spinning worker threads go to sleep first.
          await sleep(500);
          const run = await runLevel(
            endpoint(target),
            concurrency,
            s.requestsPerStream,
            specs(round, ci, model.maxTokens),
          );
          raw.push({ round, concurrency, target, run });
          progress(
            `  round ${round + 1}/${s.rounds}  ${concurrency} stream(s)  ${target.padEnd(12)} ` +
              `${run.tokensPerSecond.toFixed(0).padStart(5)} tok/s  ${(run.wallMs / 1000).toFixed(1)} s` +
              (run.otherCores === undefined ? "" : `  (others busy: ${run.otherCores.toFixed(2)} cores)`),
          );
        }
      }
    }
    for (const e of endpoints.values()) e.agent.destroy();

    const levels = s.concurrency.map((concurrency) => {
      const of = (target: TargetName) =>
        raw.filter((r) => r.concurrency === concurrency && r.target === target).map((r) => r.run);
      return summariseLevel(concurrency, { roundhouse: of("roundhouse"), "llama-server": of("llama-server") });
    });
    return { model, threads, levels, raw };
  } finally {
    await Promise.allSettled(servers.map((srv) => srv.stop()));
  }
}

// ---------------------------------------------------------------- main

function tinyModelPath(s: Settings): string {
  if (s.tinyModel) return s.tinyModel;
  if (existsSync(TINY_DEFAULT)) return TINY_DEFAULT;
  if (!existsSync(TINY_FALLBACK)) throw new Error(`${TINY_DEFAULT} is missing: run \`npm run make-model\` first`);
  progress(`${TINY_DEFAULT} is missing (npm run make-model); using ${TINY_FALLBACK} instead`);
  return TINY_FALLBACK;
}

async function main(): Promise<void> {
  if (process.argv.slice(2).includes("upstream")) {
    await runUpstreamBench();
    return;
  }
  if (process.argv.slice(2).includes("embeddings")) {
    await runEmbeddingsBench("embeddings");
    return;
  }
  if (process.argv.slice(2).includes("rerank")) {
    await runEmbeddingsBench("rerank");
    return;
  }
  if (process.argv.slice(2).includes("prefill-stall")) {
    process.stdout.write(`\n${formatStall(await runStallBench())}\n`);
    return;
  }
  if (process.argv.slice(2).includes("speculative")) {
    process.stdout.write(`\n${formatSpeculative(await runSpeculativeBench())}\n`);
    return;
  }
  if (process.argv.slice(2).includes("flash-attention")) {
    process.stdout.write(`\n${formatFlashAttention(await runFlashAttentionBench())}\n`);
    return;
  }
  if (process.argv.slice(2).includes("ttft")) {
    process.stdout.write(`\n${formatTtft(await runTtftBench())}\n`);
    return;
  }
  if (process.argv.slice(2).includes("multiturn")) {
    const results = await runMultiturnBench();
    process.stdout.write(`\n${formatMultiturn(results)}\n`);
    return;
  }
  if (process.argv.slice(2).includes("finetune-answer")) {
    const result = await runFinetuneAnswerBench();
    process.stdout.write(`\n${formatFinetuneAnswer(result)}\n`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, "finetune-answer-latest.json");
    writeFileSync(file, `${JSON.stringify({ finishedAt: new Date().toISOString(), result }, null, 2)}\n`);
    process.stdout.write(`raw results: ${file}\n`);
    return;
  }
  if (process.argv.slice(2).includes("finetune")) {
    const rows = await runFinetuneBench();
    process.stdout.write(`\n${formatFinetuneRows(rows)}\n`);
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, "finetune-latest.json");
    writeFileSync(file, `${JSON.stringify({ finishedAt: new Date().toISOString(), rows }, null, 2)}\n`);
    process.stdout.write(`raw results: ${file}\n`);
    return;
  }
  installCleanup();
  const s = settings();
  const started = new Date();
  const busy = await busyCores(1_000);
  if (busy !== undefined && busy > 0.25) {
    progress(
      `warning: ${busy.toFixed(1)} of ${cpus().length} cores are busy before the bench starts; ` +
        "numbers will be noisy (see the 'others' column)",
    );
  }
  const tiny = tinyModelPath(s);
  const models: ModelInfo[] = [];
  for (const name of s.models) {
    if (name === "tiny") {
      models.push({ name, path: tiny, description: `tiny (${tiny})`, maxTokens: s.tinyMaxTokens });
    } else {
      const m = await ensureRealisticModel(tiny, s.realisticShape, progress);
      const d = m.dims;
      models.push({
        name,
        path: m.path,
        description:
          `realistic (${(m.parameters / 1e6).toFixed(0)}M params, Q8_0 ${(m.bytes / 1e6).toFixed(0)} MB, ` +
          `n_embd ${d.nEmbd}, ${d.nLayer} layers, ${d.nHead} heads, n_ff ${d.nFf}, vocab ${d.nVocab}, random weights)`,
        maxTokens: s.maxTokens,
      });
    }
  }

  const workRoot = mkdtempSync(join(tmpdir(), "roundhouse-bench-"));
  const cases: CaseResult[] = [];
  try {
    for (const model of models) {
      for (const threads of s.threads) {
        const result = await runCase(s, model, threads, workRoot);
        cases.push(result);
        process.stdout.write(
          `\n${formatTable(
            `${model.description}\nthreads ${threads}, max_tokens ${model.maxTokens}, ${s.rounds} rounds × ` +
              `${s.requestsPerStream} requests per stream; SY = Roundhouse, LS = llama-server, ratio = SY/LS; ` +
              "cores = CPU the server used, others = CPU busy elsewhere",
            result.levels,
          )}\n`,
        );
      }
    }
  } finally {
    rmSync(workRoot, { recursive: true, force: true });
  }

  mkdirSync(RESULTS_DIR, { recursive: true });
  const cpu = cpus();
  const out = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: {
      busyCoresAtStart: busy ?? null,
      cpuModel: cpu[0]?.model ?? "unknown",
      cores: cpu.length,
      node: process.version,
      loadavgAtEnd: loadavg(),
    },
    settings: s,
    cases: cases.map((c) => ({ model: c.model, threads: c.threads, levels: c.levels, raw: c.raw })),
  };
  const file = join(RESULTS_DIR, "latest.json");
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  process.stdout.write(`\nraw results: ${file}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
