// Response cache benchmark: a hit from memory and from Redis against a miss on the built-in
// model, measured in the same run on the same server (issue #7: "hit latency p50/p99 for
// memory and Redis and the ratio to a miss; goal: a Redis hit ≤ 2 ms p99 server-side").
// Redis is measured twice: as configured by default (each replica keeps a local copy of what
// it read, so repeated hits skip the round trip; a miss overwrites the entry and so sends the
// next hit to Redis again) and with `local_copy: false` (every hit a round trip).
//
//   npx tsx bench/cache.ts        HITS=2000 MISSES=50 ROUNDS=5 LAYER_LOOKUPS=10000 to change the sample sizes
//
// The server runs as production runs it (node --import tsx src/main.ts, LOG_LEVEL=info, its
// usage log and experiment state following the cache store as by default), one process per
// configuration. Server-side latency is the usage record's latency_ms (request in → response
// handed to the HTTP layer), read from the record's log line. A miss is the same request
// with `cache-control: no-cache`, so it generates (up to 32 tokens) and stores again. Hits and
// misses alternate in ROUNDS so a drift in the machine's load falls on both alike.
//
// Server CPU per hit is the server process's CPU time (user + system, all threads: what its
// process.cpuUsage() would say, read from /proc) over the hit batches ÷ hits: on a shared machine tail latency is mostly waiting
// for a core, so CPU per hit is the figure that shows the work a hit does. It includes the
// HTTP server, the record and its log line, and the process's idle background (~5 ms/s).
// Closed loop, one request at a time over one keep-alive connection, sent from a process of
// its own (bench/cache-client.ts) that does nothing else.
//
// Two figures put those in context: the Redis round trip itself (a raw GET from this
// process, interleaved with the hits: no Redis hit can beat it), and the cache layer's own
// CPU per hit measured in-process over many lookups (key + lookup + parse), which is what
// src/cache controls and, unlike the end-to-end figure, is stable enough to compare versions.
//
// Redis: BENCH_REDIS_URL if set (it should be a scratch database), else a private
// redis-server on a spare port, started and stopped here. Linux only (/proc).
// Raw results: bench/results/cache-latest.json. Nothing here asserts a timing.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClient } from "@keyv/redis";
import pino from "pino";
import type { CachedCompletion } from "../src/cache/entry.ts";
import { cacheKey } from "../src/cache/key.ts";
import { ResponseCache } from "../src/cache/store.ts";
import { ChatCompletionRequest, type TokenLogprob } from "../src/openai/chat.ts";
import { freePort, privateRedis } from "../test/helpers/redis.ts";
import type { Batch, BatchResult } from "./cache-client.ts";
import { machineBusySeconds, processCpuSeconds, selfCpuSeconds } from "./cpu.ts";
import { percentile } from "./report.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const MODEL = process.env.ROUNDHOUSE_TEST_MODEL ?? join(REPO, "models", "roundhouse-tiny-q8_0.gguf");
const HITS = Number(process.env.HITS ?? 2000);
const MISSES = Number(process.env.MISSES ?? 50);
const ROUNDS = Number(process.env.ROUNDS ?? 5);
const LAYER_LOOKUPS = Number(process.env.LAYER_LOOKUPS ?? 10_000);
const GOAL_REDIS_HIT_P99_MS = 2;
const START_TIMEOUT_MS = 180_000;
/** Extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p". */
const NODE_ARGS = (process.env.BENCH_NODE_ARGS ?? "").split(/\s+/).filter((a) => a !== "");

type Kind = "hit" | "miss";

/** A cache configuration measured: the memory store, Redis with each replica's local copy (the default), Redis without. */
type Store = "memory" | "redis" | "redis-no-copy";

const CACHE_SECTION: Record<Store, (redisUrl: string) => Record<string, unknown>> = {
  memory: () => ({ store: "memory" }),
  redis: (url) => ({ store: "redis", url }),
  "redis-no-copy": (url) => ({ store: "redis", url, local_copy: false }),
};

interface StoreRun {
  store: Store;
  /** The usage records' latency_ms, by cache result. */
  serverMs: Record<Kind, number[]>;
  /** Loopback round trip seen by this client, by cache result. */
  clientMs: Record<Kind, number[]>;
  /** Server CPU seconds and wall seconds spent in each kind's batches. */
  cpuSeconds: Record<Kind, number>;
  wallSeconds: Record<Kind, number>;
  /** Requests sent in the measured batches. */
  sent: Record<Kind, number>;
  /** Cores kept busy by everything else on the machine while this store was measured. */
  otherCores: number | null;
  /** Requests whose x-roundhouse-cache was not the one asked for (a Redis lookup past its timeout). */
  unexpected: Record<string, number>;
  /** Raw GETs of a 300-byte value from this process, between the hit batches (redis only). */
  redisRoundTripMs: number[];
}

interface Server {
  port: number;
  pid: number;
  /** The usage records' latency_ms so far, by cache result, from the server's log lines. */
  records(): Record<Kind, number[]>;
  stop(): Promise<void>;
}

/** Starts src/main.ts with `cache` as models.yaml's cache section; resolves once /healthz says ready. */
async function startServer(cache: Record<string, unknown>, workDir: string): Promise<Server> {
  const port = await freePort();
  const configPath = join(workDir, "models.yaml");
  // JSON is valid YAML; the schema is src/config/schema.ts.
  const config = {
    server: { host: "127.0.0.1", port },
    cache,
    ...(process.env.BENCH_USAGE_LOG ? { usage_log: { store: process.env.BENCH_USAGE_LOG } } : {}),
    models: [{ id: "tiny", provider: "llama", path: MODEL, context_size: 512, threads: 1, preload: true }],
  };
  writeFileSync(configPath, JSON.stringify(config));
  // The server's log goes to a file, read only between measured batches: a pipe would wake this
  // process to parse lines while the server is serving, and on 2 cores that is a competitor for
  // the core Redis needs.
  const logFile = join(workDir, "server.log");
  const logFd = openSync(logFile, "w");
  const child: ChildProcess = spawn(process.execPath, [...NODE_ARGS, "--import", "tsx", "src/main.ts"], {
    cwd: REPO,
    env: { ...process.env, MODELS_CONFIG: configPath, DATA_DIR: join(workDir, "data"), LOG_LEVEL: "info" },
    stdio: ["ignore", logFd, logFd],
  });
  closeSync(logFd);
  const kill = () => child.kill("SIGKILL");
  process.once("exit", kill);
  const records = (): Record<Kind, number[]> => {
    const found: Record<Kind, number[]> = { hit: [], miss: [] };
    for (const line of readFileSync(logFile, "utf8").split("\n")) {
      if (!line.includes('"msg":"request"')) continue;
      const { record } = JSON.parse(line) as { record: { cache?: string; latency_ms: number } };
      if (record.cache === "hit" || record.cache === "miss") found[record.cache].push(record.latency_ms);
    }
    return found;
  };
  const tail = () => readFileSync(logFile, "utf8").slice(-4000);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
    }
    process.removeListener("exit", kill);
  };
  const deadline = Date.now() + START_TIMEOUT_MS;
  while ((await get(port, "/healthz")) !== 200) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`the server did not become ready\n${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { port, pid: child.pid ?? -1, records, stop };
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", () => resolve(0));
    req.end();
  });
}

const BODY = JSON.stringify({
  model: "tiny",
  messages: [{ role: "user", content: "What is the capital of France?" }],
  temperature: 0,
  max_tokens: 32,
});

/** The load generator (bench/cache-client.ts) in its own process; `send` runs one batch there. */
function loadGenerator(): { pid: number; send(batch: Batch): Promise<BatchResult>; close(): void } {
  const child = fork(fileURLToPath(new URL("./cache-client.ts", import.meta.url)), [], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  return {
    pid: child.pid ?? -1,
    send: (batch) =>
      new Promise((resolve, reject) => {
        const onExit = () => reject(new Error("the load generator exited"));
        child.once("exit", onExit);
        child.once("message", (result) => {
          child.off("exit", onExit);
          resolve(result as BatchResult);
        });
        child.send(batch);
      }),
    close: () => child.disconnect(),
  };
}

async function measure(store: Store, redisUrl: string): Promise<StoreRun> {
  const workDir = mkdtempSync(join(tmpdir(), "roundhouse-bench-cache-"));
  const server = await startServer(CACHE_SECTION[store](redisUrl), workDir);
  const client = loadGenerator();
  const run: StoreRun = {
    store,
    serverMs: { hit: [], miss: [] },
    clientMs: { hit: [], miss: [] },
    cpuSeconds: { hit: 0, miss: 0 },
    wallSeconds: { hit: 0, miss: 0 },
    sent: { hit: 0, miss: 0 },
    otherCores: null,
    unexpected: {},
    redisRoundTripMs: [],
  };
  const raw = store !== "memory" ? createClient({ url: redisUrl }) : undefined;
  try {
    await raw?.connect();
    await raw?.set("roundhouse:bench:round-trip", "x".repeat(300));
    const batch = async (kind: Kind, n: number, keep: boolean) => {
      const cpu0 = processCpuSeconds(server.pid) ?? Number.NaN;
      const wall0 = performance.now();
      const result = await client.send({ port: server.port, body: BODY, noCache: kind === "miss", n });
      const wall1 = performance.now();
      const cpu1 = processCpuSeconds(server.pid) ?? Number.NaN;
      if (result.error !== undefined) throw new Error(result.error);
      result.cache.forEach((cache, i) => {
        // A lookup that outlived cache.timeout is answered as a miss: counted, not timed as a hit.
        if (cache !== kind)
          run.unexpected[`${kind} answered as ${cache}`] = (run.unexpected[`${kind} answered as ${cache}`] ?? 0) + 1;
        else if (keep) run.clientMs[kind].push(result.ms[i] ?? Number.NaN);
      });
      if (!keep) return;
      run.sent[kind] += n;
      run.wallSeconds[kind] += (wall1 - wall0) / 1000;
      run.cpuSeconds[kind] += cpu1 - cpu0;
    };
    // The first request stores the answer; then warm-up (JIT, connections) that is not kept.
    await batch("miss", 3, false);
    await batch("hit", 300, false);
    // The server writes its log lines in 4 KB batches and at least once a second.
    await new Promise((r) => setTimeout(r, 1100));
    const warm = server.records();
    const warmRecords = { hit: warm.hit.length, miss: warm.miss.length };
    const machine0 = machineBusySeconds();
    const self0 = selfCpuSeconds() + (processCpuSeconds(client.pid) ?? Number.NaN);
    const server0 = processCpuSeconds(server.pid);
    const wall0 = performance.now();
    for (let round = 0; round < ROUNDS; round++) {
      await batch("miss", Math.ceil(MISSES / ROUNDS), true);
      await batch("hit", Math.ceil(HITS / ROUNDS), true);
      for (let i = 0; raw && i < Math.ceil(HITS / ROUNDS); i++) {
        const started = performance.now();
        await raw.get("roundhouse:bench:round-trip");
        run.redisRoundTripMs.push(performance.now() - started);
      }
    }
    const machine1 = machineBusySeconds();
    const seconds = (performance.now() - wall0) / 1000;
    const server1 = processCpuSeconds(server.pid);
    if (machine0 !== undefined && machine1 !== undefined && server0 !== undefined && server1 !== undefined) {
      const self1 = selfCpuSeconds() + (processCpuSeconds(client.pid) ?? Number.NaN);
      const ours = server1 - server0 + (self1 - self0);
      run.otherCores = (machine1 - machine0 - ours) / seconds;
    }
    // A record goes out just after its response, its log line within a second.
    await new Promise((r) => setTimeout(r, 1100));
    const all = server.records();
    run.serverMs.hit = all.hit.slice(warmRecords.hit);
    run.serverMs.miss = all.miss.slice(warmRecords.miss);
  } finally {
    if (raw?.isOpen) {
      await raw.del("roundhouse:bench:round-trip");
      await raw.close();
    }
    client.close();
    await server.stop();
    rmSync(workDir, { recursive: true, force: true });
  }
  return run;
}

function summary(run: StoreRun) {
  const p = (xs: number[], q: number) => percentile(xs, q) ?? Number.NaN;
  const hitP50 = p(run.serverMs.hit, 50);
  const hitP99 = p(run.serverMs.hit, 99);
  const missP50 = p(run.serverMs.miss, 50);
  const missP99 = p(run.serverMs.miss, 99);
  return {
    store: run.store,
    hits: run.serverMs.hit.length,
    misses: run.serverMs.miss.length,
    hitP50Ms: hitP50,
    hitP99Ms: hitP99,
    missP50Ms: missP50,
    missP99Ms: missP99,
    hitOverMissP50: hitP50 / missP50,
    hitOverMissP99: hitP99 / missP99,
    cpuUsPerHit: (run.cpuSeconds.hit * 1e6) / run.sent.hit,
    cpuUsPerMiss: (run.cpuSeconds.miss * 1e6) / run.sent.miss,
    clientHitP50Ms: p(run.clientMs.hit, 50),
    clientHitP99Ms: p(run.clientMs.hit, 99),
    otherCores: run.otherCores,
    unexpected: run.unexpected,
    redisRoundTripP50Ms: percentile(run.redisRoundTripMs, 50),
    redisRoundTripP99Ms: percentile(run.redisRoundTripMs, 99),
  };
}

/** An entry like the recorder stores: one merged content event and the finish. */
function entryOf(tokens: number, withLogprobs: boolean): CachedCompletion {
  const words = Array.from({ length: tokens }, (_, i) => ` word${i % 97}`);
  const logprob = (token: string) => ({ token, logprob: -0.25, bytes: [...Buffer.from(token)] });
  const logprobs: TokenLogprob[] = words.map((w) => ({
    ...logprob(w),
    top_logprobs: [w, " a", " the", " of", " and"].map(logprob),
  }));
  return {
    v: 1,
    model: "tiny",
    events: [
      { type: "content", index: 0, text: words.join(""), ...(withLogprobs ? { logprobs } : {}) },
      { type: "finish", index: 0, reason: "length" },
    ],
    usage: { promptTokens: 21, completionTokens: tokens },
    storedAt: Date.now(),
  };
}

/** µs of this process's CPU per call of `op`, over `n` sequential calls after a warm-up. */
async function cpuPerCall(n: number, op: () => unknown): Promise<number> {
  for (let i = 0; i < Math.ceil(n / 10); i++) await op();
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) await op();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

/**
 * The cache layer's CPU per hit, in this process: the key of the bench's request, and a
 * lookup that hits (the Redis one includes node-redis's share of the round trip, not
 * redis-server's) for the bench's 32-token answer and for a 512-token one with logprobs.
 */
async function cacheLayer(redisUrl: string, n: number) {
  const logger = pino({ level: "silent" });
  const options = { ttlMs: 3_600_000, maxEntries: 10_000, maxBytes: 256 * 2 ** 20, timeoutMs: 1000 };
  const req = ChatCompletionRequest.parse(JSON.parse(BODY));
  const target = { modelId: "tiny", modelDigest: "sha256:0123456789abcdef" };
  const key = cacheKey(target, req);
  const keyUs = await cpuPerCall(n * 5, () => cacheKey(target, req));
  const lookups: Record<string, number> = {};
  for (const store of ["memory", "redis", "redis-no-copy"] as const) {
    const cache = ResponseCache.create(
      { store: store === "memory" ? "memory" : "redis", url: redisUrl, localCopy: store === "redis", ...options },
      logger,
    );
    // Connects: a write sent while the client is still connecting is dropped, by design.
    await cache.get("tiny:warm-up");
    // The large entry gets a twentieth of the lookups: each one costs milliseconds.
    for (const [size, entry, calls] of [
      ["32 tokens", entryOf(32, false), n],
      ["512 tokens + logprobs", entryOf(512, true), Math.ceil(n / 20)],
    ] as const) {
      cache.set(key, entry);
      let found = (await cache.get(key)).result;
      for (let i = 0; i < 100 && found !== "hit"; i++) {
        await new Promise((r) => setTimeout(r, 10));
        found = (await cache.get(key)).result;
      }
      if (found !== "hit") throw new Error(`the ${store} cache did not keep the entry`);
      lookups[`${store}, ${size} (${JSON.stringify(entry).length} B)`] = await cpuPerCall(calls, () => cache.get(key));
    }
    await cache.purge("tiny");
    await cache.close();
  }
  return { keyUs, lookups };
}

async function main(): Promise<void> {
  const redis = process.env.BENCH_REDIS_URL ? undefined : await privateRedis();
  await redis?.start();
  const redisUrl = process.env.BENCH_REDIS_URL ?? redis?.url ?? "";
  const loadAtStart = loadavg();
  const runs: StoreRun[] = [];
  let layer: Awaited<ReturnType<typeof cacheLayer>>;
  try {
    for (const store of ["memory", "redis", "redis-no-copy"] as const) runs.push(await measure(store, redisUrl));
    layer = await cacheLayer(redisUrl, LAYER_LOOKUPS);
  } finally {
    await redis?.stop();
  }
  const loadAtEnd = loadavg();
  const rows = runs.map(summary);

  const f = (n: number, width = 7, digits = 2) => n.toFixed(digits).padStart(width);
  const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");
  console.log(
    `cache benchmark: ${HITS} hits and ${MISSES} misses per store in ${ROUNDS} interleaved rounds; ${cpus().length} cores; load average ${load(loadAtStart)} at start, ${load(loadAtEnd)} at end`,
  );
  console.log(
    "                server-side latency_ms (ms)               hit ÷ miss       server CPU (µs)   client round trip",
  );
  console.log(
    "store         | hit p50 | hit p99 | miss p50 | miss p99 |  p50     p99   | per hit | per miss | hit p50 | hit p99 | other cores busy",
  );
  for (const r of rows) {
    console.log(
      `${r.store.padEnd(13)} | ${f(r.hitP50Ms)} | ${f(r.hitP99Ms)} | ${f(r.missP50Ms, 8)} | ${f(r.missP99Ms, 8)} | ${f(r.hitOverMissP50, 6, 4)} ${f(r.hitOverMissP99, 6, 4)} | ${f(r.cpuUsPerHit, 7, 0)} | ${f(r.cpuUsPerMiss, 8, 0)} | ${f(r.clientHitP50Ms)} | ${f(r.clientHitP99Ms)} | ${r.otherCores === null ? "n/a" : r.otherCores.toFixed(2)}`,
    );
  }
  for (const r of rows) {
    if (r.redisRoundTripP50Ms !== null && r.redisRoundTripP99Ms !== null) {
      console.log(
        `redis round trip (raw GET from the bench, between the hits): p50 ${r.redisRoundTripP50Ms.toFixed(2)} ms, p99 ${r.redisRoundTripP99Ms.toFixed(2)} ms`,
      );
    }
    for (const [what, n] of Object.entries(r.unexpected))
      console.log(`${r.store}: ${n} ${what} (lookup past cache.timeout)`);
  }
  console.log(`cache layer CPU per hit, in-process (${LAYER_LOOKUPS} lookups): key ${layer.keyUs.toFixed(1)} µs`);
  for (const [what, us] of Object.entries(layer.lookups)) console.log(`  lookup ${what}: ${us.toFixed(1)} µs`);
  for (const row of rows.filter((r) => r.store !== "memory")) {
    const met = row.hitP99Ms <= GOAL_REDIS_HIT_P99_MS;
    const how = row.store === "redis" ? "with local copies (the default)" : "every hit a Redis round trip";
    console.log(
      `goal: a Redis hit ≤ ${GOAL_REDIS_HIT_P99_MS} ms p99 server-side, ${how}: ${met ? "met" : "not met"} (${row.hitP99Ms.toFixed(2)} ms at load ${load(loadAtEnd)})`,
    );
  }
  const dir = join(REPO, "bench", "results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "cache-latest.json");
  const machine = {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? "",
    node: process.version,
    loadAtStart,
    loadAtEnd,
  };
  writeFileSync(
    file,
    `${JSON.stringify({ finishedAt: new Date().toISOString(), machine, settings: { HITS, MISSES, ROUNDS, LAYER_LOOKUPS, model: MODEL }, summaries: rows, cacheLayer: layer, runs }, null, 2)}\n`,
  );
  console.log(`raw results: ${file}`);
}

await main();
