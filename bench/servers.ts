// Starting and stopping the two servers under test, each as its own process, the way
// they run in production: Roundhouse from src/main.ts with a models.yaml, llama-server
// with the equivalent flags. Every process started here is registered, so an error or a
// Ctrl-C anywhere in the bench still stops it.
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { request } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { toolPath } from "../src/engine/llama-tools.ts";
import { processCpuSeconds } from "./cpu.ts";

export type TargetName = "roundhouse" | "llama-server";

/** What both servers are given, so they run the same model the same way. */
export interface ServeOptions {
  modelPath: string;
  /** Tokens per sequence (Roundhouse's context_size; llama-server gets it × parallel). */
  contextSize: number;
  parallel: number;
  threads: number;
  /** Scratch folder for config files, data and logs; the caller removes it. */
  workDir: string;
  /** Serve embeddings (Roundhouse: `operations: [embeddings]`; llama-server: --embeddings) or
   * reranking (`operations: [rerank]`; --reranking) instead of chat. */
  operation?: "embeddings" | "rerank";
  /** Flash attention for both (Roundhouse's `flash_attention`, llama-server's --flash-attn); default auto. */
  flashAttention?: FlashAttention;
  /** More keys for Roundhouse's model entry (models.yaml), e.g. `speculative`. */
  modelExtra?: Record<string, unknown>;
}

export type FlashAttention = "auto" | "on" | "off";

/** BENCH_FLASH_ATTENTION=auto|on|off, for both targets. */
export function flashAttentionFromEnv(): FlashAttention {
  const v = process.env.BENCH_FLASH_ATTENTION ?? "auto";
  if (v !== "auto" && v !== "on" && v !== "off")
    throw new Error(`BENCH_FLASH_ATTENTION: expected auto, on or off, not ${v}`);
  return v;
}

export interface RunningServer {
  name: TargetName;
  baseUrl: string;
  /** The `model` field requests must send. */
  model: string;
  pid: number;
  /** CPU seconds (user + system) the process has used so far; undefined off Linux. */
  cpuSeconds(): number | undefined;
  /** Last lines of the process's output, for error messages. */
  logTail(): string;
  stop(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const LOG_TAIL_CHARS = 8_000;
const START_TIMEOUT_MS = 180_000;
const STOP_GRACE_MS = 15_000;

// ---------------------------------------------------------------- process registry

const live = new Set<ChildProcess>();
let cleanupInstalled = false;

/** Stops every registered process on Ctrl-C, SIGTERM and exit; call once at start. */
export function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the servers\n`);
    void Promise.allSettled([...live].map((c) => stopChild(c, 3_000))).then(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // Last resort on any other way out (an uncaught error): no time left to be polite.
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(kill);
      live.delete(child);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

// ---------------------------------------------------------------- helpers

/** A port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const address = srv.address();
      const port = typeof address === "object" && address ? address.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("no free port"))));
    });
  });
}

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: "GET", timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
    req.end();
  });
}

interface Launch {
  name: TargetName;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  port: number;
  healthPath: string;
  model: string;
}

async function launch(l: Launch): Promise<RunningServer> {
  const child = spawn(l.command, l.args, { cwd: l.cwd, env: l.env, stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  let tail = "";
  const keep = (b: Buffer) => {
    tail = (tail + b.toString()).slice(-LOG_TAIL_CHARS);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let spawnError: Error | undefined;
  child.once("error", (err) => {
    spawnError = err;
  });

  const server: RunningServer = {
    name: l.name,
    baseUrl: `http://127.0.0.1:${l.port}`,
    model: l.model,
    pid: child.pid ?? -1,
    cpuSeconds: () => (child.pid === undefined ? undefined : processCpuSeconds(child.pid)),
    logTail: () => tail,
    stop: () => stopChild(child, STOP_GRACE_MS),
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  try {
    for (;;) {
      if (spawnError) throw spawnError;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`${l.name} exited (${child.exitCode ?? child.signalCode}) before it was healthy`);
      }
      if ((await httpStatus(`${server.baseUrl}${l.healthPath}`)) === 200) return server;
      if (Date.now() > deadline) throw new Error(`${l.name} not healthy after ${START_TIMEOUT_MS / 1000} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } catch (err) {
    await server.stop();
    throw new Error(`${(err as Error).message}\n--- ${l.name} output (tail) ---\n${tail}`);
  }
}

// ---------------------------------------------------------------- the two targets

export const ROUNDHOUSE_MODEL_ID = "bench";

/** Roundhouse as `npm start` runs it, but `node --import tsx` directly so the pid we
 * watch (CPU time) is the server itself, not an npx wrapper. */
export async function startRoundhouse(o: ServeOptions, nodeArgs: readonly string[] = []): Promise<RunningServer> {
  const port = await freePort();
  const configPath = join(o.workDir, "models.yaml");
  // JSON is valid YAML; the schema is src/config/schema.ts.
  const config = {
    server: { host: "127.0.0.1", port },
    max_loaded_models: 1,
    // The response cache would replay temperature-0 answers from memory: the bench measures
    // generation, so it is off (load.ts also refuses any reply marked as a cache hit).
    cache: { mode: "off" },
    models: [
      {
        id: ROUNDHOUSE_MODEL_ID,
        provider: "llama",
        path: o.modelPath,
        context_size: o.contextSize,
        parallel: o.parallel,
        threads: o.threads,
        preload: true,
        flash_attention:
          o.flashAttention === undefined || o.flashAttention === "auto" ? "auto" : o.flashAttention === "on",
        ...(o.operation ? { operations: [o.operation] } : {}),
        // BENCH_PROMPT_CACHE=off: without saved conversation states (models.yaml prompt_cache: false).
        ...(process.env.BENCH_PROMPT_CACHE === "off" ? { prompt_cache: false } : {}),
        ...o.modelExtra,
      },
    ],
  };
  writeFileSync(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return launch({
    name: "roundhouse",
    command: process.execPath,
    args: [...nodeArgs, "--import", "tsx", "src/main.ts"],
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      MODELS_CONFIG: configPath,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATA_DIR: join(o.workDir, "data"),
      LOG_LEVEL: "warn",
    },
    port,
    healthPath: "/healthz",
    model: ROUNDHOUSE_MODEL_ID,
  });
}

/** llama-server configured like Roundhouse's engine: `parallel` slots of `contextSize`
 * tokens each (so -c is the total), the same threads, no web UI. Flash attention auto is each
 * server's default: llama-server turns it on where the device supports it, as this CPU build
 * does; Roundhouse on the CPU only for heads 64 or more wide (src/engine/flash-attention.ts),
 * so on the tiny model (16) auto compares defaults, and BENCH_FLASH_ATTENTION=off the two
 * configured alike. */
export async function startLlamaServer(
  o: ServeOptions,
  extraArgs: readonly string[] = [],
  binary?: string,
): Promise<RunningServer> {
  const port = await freePort();
  const bin = binary ?? (await toolPath("llama-server"));
  return launch({
    name: "llama-server",
    command: bin,
    args: [
      "-m",
      o.modelPath,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
      "-c",
      String(o.contextSize * o.parallel),
      "--parallel",
      String(o.parallel),
      "-t",
      String(o.threads),
      "--flash-attn",
      o.flashAttention ?? "auto",
      "--no-webui",
      // Pooling as the GGUF says, as node-llama-cpp's embedding and ranking contexts read it.
      ...(o.operation === "embeddings" ? ["--embeddings"] : o.operation === "rerank" ? ["--reranking"] : []),
      ...extraArgs,
    ],
    cwd: o.workDir,
    env: process.env,
    port,
    healthPath: "/health",
    model: "bench",
  });
}
