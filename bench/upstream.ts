// `npm run bench -- upstream` (or `npx tsx bench/upstream.ts`): what Roundhouse adds in front of an upstream OpenAI-compatible
// server, next to Portkey's AI gateway doing the same job, in the same run.
//
// A fake upstream on loopback (bench/upstream-fake.ts, its own process) answers instantly, or
// paced per chunk for streams. Four targets send it the same requests:
//   direct      the load generator talks to the fake upstream itself (the baseline)
//   bare        bench/upstream-bare.ts: a Hono proxy that only relays (the floor for any
//               proxy on node; BENCH_BARE=0 leaves it out)
//   roundhouse  `node --import tsx src/main.ts`, with the cache (every request a miss: a
//               lookup and a store), telemetry (usage log, metrics, a log line per request
//               to a file) and an A/B experiment (two variants, two upstream models) on
//   portkey     @portkey-ai/gateway, installed at bench time (bench/portkey.ts), default settings
// For several rounds, each measurement runs every target back to back in a rotating order,
// so drift on a shared machine hits all alike:
//   latency     one request at a time (non-streaming, instant upstream): p50 / p99, and what
//               each proxy adds to direct
//   throughput  32 concurrent clients in a closed loop: requests/s, and the proxy process's
//               CPU per request (/proc, user + system)
//   stream      one streaming request at a time, paced upstream: time to the first content
//               chunk (TTFB), and what each proxy adds to direct
//   streams     the throughput measurement with streamed replies (the instant model's 16
//               chunks, sent at once): requests/s and CPU per request
// Nothing here asserts a timing; the goals are printed beside the figures. Raw results:
// bench/results/upstream-latest.json.
//
// Settings (environment variables):
//   BENCH_ROUNDS              5     interleaved rounds
//   BENCH_LATENCY_REQUESTS    400   sequential requests per target and round
//   BENCH_THROUGHPUT_REQUESTS 6400  requests per target and round at BENCH_CONCURRENCY
//   BENCH_CONCURRENCY         32
//   BENCH_STREAM_REQUESTS     60    sequential streams per target and round
//   BENCH_STREAMS_REQUESTS    3200  streamed requests per target and round at BENCH_CONCURRENCY
//   BENCH_PIECES              16    content chunks per reply
//   BENCH_PACE_MS             10    gap between chunks of a paced stream
//   BENCH_PORTKEY             1     0 leaves Portkey out (offline machines)
//   BENCH_BARE                1     0 leaves the bare proxy out
//   BENCH_PORTKEY_DIR         ~/.cache/roundhouse/portkey
//   BENCH_LOG_LEVEL           info  Roundhouse's LOG_LEVEL (its log goes to a file)
//   BENCH_CACHE, BENCH_AB     1     0 turns Roundhouse's cache / experiment off, to see what each costs
//   BENCH_PHASES              latency,throughput,stream,streams   which measurements to run
//   BENCH_NODE_ARGS                 extra node flags for Roundhouse, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p"
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { busyCores, processCpuSeconds } from "./cpu.ts";
import { ensurePortkey, PORTKEY_VERSION, portkeyCommand, portkeyDir, portkeyHeaders } from "./portkey.ts";
import { percentile } from "./report.ts";
import { freePort } from "./servers.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = join(REPO_ROOT, "bench", "results");
const progress = (line: string) => process.stderr.write(`${line}\n`);

interface Settings {
  rounds: number;
  latencyRequests: number;
  throughputRequests: number;
  concurrency: number;
  streamRequests: number;
  streamsRequests: number;
  pieces: number;
  paceMs: number;
  portkey: boolean;
  bare: boolean;
  logLevel: string;
  cache: boolean;
  ab: boolean;
  phases: Set<string>;
  nodeArgs: string[];
}

function int(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name}: expected an integer ≥ ${min}, got "${raw}"`);
  return value;
}

function settings(): Settings {
  return {
    rounds: int("BENCH_ROUNDS", 5),
    latencyRequests: int("BENCH_LATENCY_REQUESTS", 400),
    throughputRequests: int("BENCH_THROUGHPUT_REQUESTS", 6400),
    concurrency: int("BENCH_CONCURRENCY", 32),
    streamRequests: int("BENCH_STREAM_REQUESTS", 60),
    streamsRequests: int("BENCH_STREAMS_REQUESTS", 3200),
    pieces: int("BENCH_PIECES", 16),
    paceMs: int("BENCH_PACE_MS", 10, 0),
    portkey: process.env.BENCH_PORTKEY !== "0",
    bare: process.env.BENCH_BARE !== "0",
    logLevel: process.env.BENCH_LOG_LEVEL ?? "info",
    cache: process.env.BENCH_CACHE !== "0",
    ab: process.env.BENCH_AB !== "0",
    phases: new Set((process.env.BENCH_PHASES ?? "latency,throughput,stream,streams").split(",").map((p) => p.trim())),
    nodeArgs: (process.env.BENCH_NODE_ARGS ?? "").split(/\s+/).filter((a) => a !== ""),
  };
}

// ---------------------------------------------------------------- processes

interface Proc {
  name: string;
  child: ChildProcess;
  cpuSeconds(): number | undefined;
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();

function stopChild(child: ChildProcess): Promise<void> {
  live.delete(child);
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function start(name: string, args: string[], env: NodeJS.ProcessEnv, logFile: string, cwd = REPO_ROOT): Proc {
  // Straight into the file: piped through this process, a target's log lines would cost the
  // load generator CPU (a read and a write per 4 KiB of log) and slow every target's figures.
  const log = openSync(logFile, "w");
  const child = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", log, log] });
  closeSync(log);
  live.add(child);
  return {
    name,
    child,
    cpuSeconds: () => (child.pid === undefined ? undefined : processCpuSeconds(child.pid)),
    stop: () => stopChild(child),
  };
}

function get(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(0));
    req.end();
  });
}

async function waitHealthy(proc: Proc, url: string, logFile: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  while ((await get(url)) !== 200) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited early; see ${logFile}`);
    if (Date.now() > deadline) throw new Error(`${proc.name} not healthy after 120 s; see ${logFile}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function roundhouseConfig(port: number, upstream: string, s: Settings): object {
  // JSON is YAML; the schema is src/config/schema.ts. Two upstream models per public name, so
  // every request goes through an experiment's variant assignment.
  const model = (id: string, name: string) => ({ id, provider: "openai", base_url: upstream, model: name, retries: 0 });
  if (!s.ab) {
    return {
      server: { host: "127.0.0.1", port },
      cache: { mode: s.cache ? "deterministic" : "off", max_entries: 100_000 },
      models: [model("instant", "instant"), model("paced", "paced")],
    };
  }
  const experiment = (name: string) => ({
    name,
    variants: [
      { name: "a", model: `${name}-a`, weight: 1 },
      { name: "b", model: `${name}-b`, weight: 1 },
    ],
  });
  return {
    server: { host: "127.0.0.1", port },
    cache: { mode: s.cache ? "deterministic" : "off", max_entries: 100_000 },
    models: [
      model("instant-a", "instant"),
      model("instant-b", "instant"),
      model("paced-a", "paced"),
      model("paced-b", "paced"),
    ],
    experiments: [experiment("instant"), experiment("paced")],
  };
}

// ---------------------------------------------------------------- load

type TargetName = "direct" | "bare" | "roundhouse" | "portkey";

interface Target {
  name: TargetName;
  /** Host and port of the chat completions endpoint. */
  url: URL;
  headers: Record<string, string>;
  agent: Agent;
  /** The process whose CPU is this target's own (the fake upstream for direct). */
  proc: Proc;
}

interface Sample {
  totalMs: number;
  /** First content chunk, for streams. */
  ttfbMs: number | undefined;
}

let sequence = 0;

/** A request no cache has seen: deterministic (temperature 0), so Roundhouse looks it up and stores it. */
function body(model: "instant" | "paced", stream: boolean): string {
  sequence++;
  return JSON.stringify({
    model,
    messages: [
      { role: "system", content: "You are a helpful assistant." },
      { role: "user", content: `Question number ${sequence}: what is the capital of France?` },
    ],
    temperature: 0,
    max_tokens: 64,
    ...(stream ? { stream: true } : {}),
  });
}

function send(target: Target, payload: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ttfbMs: number | undefined;
    const req = request(
      {
        host: target.url.hostname,
        port: target.url.port,
        path: target.url.pathname,
        method: "POST",
        agent: target.agent,
        headers: { "content-type": "application/json", ...target.headers },
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (s: string) => {
          text += s;
          // "Hello" is the first word of every reply, and appears nowhere before it.
          if (ttfbMs === undefined && text.includes("Hello")) ttfbMs = performance.now() - started;
        });
        res.on("end", () => {
          if (res.statusCode !== 200 || ttfbMs === undefined) {
            reject(new Error(`${target.name}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`));
            return;
          }
          resolve({ totalMs: performance.now() - started, ttfbMs });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

async function sequential(target: Target, n: number, model: "instant" | "paced", stream: boolean): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let i = 0; i < n; i++) samples.push(await send(target, body(model, stream)));
  return samples;
}

interface ThroughputRun {
  requests: number;
  wallMs: number;
  cpuSeconds: number | undefined;
}

async function closedLoop(target: Target, n: number, concurrency: number, stream = false): Promise<ThroughputRun> {
  let left = n;
  const cpuBefore = target.proc.cpuSeconds();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (left > 0) {
        left--;
        await send(target, body("instant", stream));
      }
    }),
  );
  const wallMs = performance.now() - started;
  const cpuAfter = target.proc.cpuSeconds();
  return {
    requests: n,
    wallMs,
    cpuSeconds: cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore,
  };
}

// ---------------------------------------------------------------- summary

interface Raw {
  latency: number[];
  ttfb: number[];
  throughput: ThroughputRun[];
  streams: ThroughputRun[];
}

interface Summary {
  latencyP50: number;
  latencyP99: number;
  requestsPerSecond: number;
  cpuUsPerRequest: number | undefined;
  ttfbP50: number;
  ttfbP99: number;
  /** requests/s of each round, to show the drift. */
  roundRequestsPerSecond: number[];
  streamsPerSecond: number;
  cpuUsPerStream: number | undefined;
}

/** Requests/s and the target's CPU per request over several closed-loop runs. */
function rate(runs: ThroughputRun[]): { perSecond: number; cpuUs: number | undefined } {
  const requests = runs.reduce((s, r) => s + r.requests, 0);
  const seconds = runs.reduce((s, r) => s + r.wallMs, 0) / 1000;
  const cpu = runs.every((r) => r.cpuSeconds !== undefined)
    ? runs.reduce((s, r) => s + (r.cpuSeconds ?? 0), 0)
    : undefined;
  return { perSecond: requests / seconds, cpuUs: cpu === undefined ? undefined : (cpu * 1e6) / requests };
}

function summarise(raw: Raw): Summary {
  const plain = rate(raw.throughput);
  const streams = rate(raw.streams);
  return {
    latencyP50: percentile(raw.latency, 50) ?? Number.NaN,
    latencyP99: percentile(raw.latency, 99) ?? Number.NaN,
    requestsPerSecond: plain.perSecond,
    cpuUsPerRequest: plain.cpuUs,
    ttfbP50: percentile(raw.ttfb, 50) ?? Number.NaN,
    ttfbP99: percentile(raw.ttfb, 99) ?? Number.NaN,
    roundRequestsPerSecond: raw.throughput.map((r) => r.requests / (r.wallMs / 1000)),
    streamsPerSecond: streams.perSecond,
    cpuUsPerStream: streams.cpuUs,
  };
}

// NaN: the phase was not run (BENCH_PHASES).
const ms = (v: number) => (Number.isNaN(v) ? "—" : `${v.toFixed(3)} ms`);
const signed = (v: number) => (Number.isNaN(v) ? "—" : `${v >= 0 ? "+" : ""}${v.toFixed(3)} ms`);

function report(s: Settings, summaries: Map<TargetName, Summary>): string {
  const d = summaries.get("direct") as Summary;
  const names = [...summaries.keys()];
  const row = (label: string, cell: (x: Summary, name: TargetName) => string) =>
    `${label.padEnd(30)}${names.map((n) => cell(summaries.get(n) as Summary, n).padStart(16)).join("")}`;
  const lines = [
    row("", (_x, n) => n),
    row("latency p50, c=1", (x) => ms(x.latencyP50)),
    row("  added to direct", (x) => signed(x.latencyP50 - d.latencyP50)),
    row("latency p99, c=1", (x) => ms(x.latencyP99)),
    row("  added to direct", (x) => signed(x.latencyP99 - d.latencyP99)),
    row(`requests/s, c=${s.concurrency}`, (x) => x.requestsPerSecond.toFixed(0)),
    row("CPU per request (own process)", (x) =>
      x.cpuUsPerRequest === undefined ? "n/a" : `${x.cpuUsPerRequest.toFixed(0)} µs`,
    ),
    row(`stream requests/s, c=${s.concurrency}`, (x) =>
      Number.isNaN(x.streamsPerSecond) ? "—" : x.streamsPerSecond.toFixed(0),
    ),
    row("CPU per stream (own process)", (x) =>
      x.cpuUsPerStream === undefined ? "n/a" : `${x.cpuUsPerStream.toFixed(0)} µs`,
    ),
    row("stream TTFB p50", (x) => ms(x.ttfbP50)),
    row("  added to direct", (x) => signed(x.ttfbP50 - d.ttfbP50)),
    row("stream TTFB p99", (x) => ms(x.ttfbP99)),
  ];
  lines.push(
    "",
    `requests/s at c=${s.concurrency}, round by round:`,
    ...names.map(
      (n) =>
        `  ${n.padEnd(12)}${(summaries.get(n) as Summary).roundRequestsPerSecond.map((v) => v.toFixed(0).padStart(7)).join("")}`,
    ),
  );
  const sy = summaries.get("roundhouse");
  const pk = summaries.get("portkey");
  if (sy && pk) {
    lines.push(
      "",
      "Roundhouse ÷ Portkey",
      `  requests/s at c=${s.concurrency}: ${(sy.requestsPerSecond / pk.requestsPerSecond).toFixed(2)}×` +
        `  (per round: ${sy.roundRequestsPerSecond.map((v, i) => (v / (pk.roundRequestsPerSecond[i] ?? Number.NaN)).toFixed(2)).join(", ")})`,
      `  CPU per request: ${sy.cpuUsPerRequest !== undefined && pk.cpuUsPerRequest !== undefined ? (sy.cpuUsPerRequest / pk.cpuUsPerRequest).toFixed(2) : "n/a"}×`,
      `  stream requests/s at c=${s.concurrency}: ${(sy.streamsPerSecond / pk.streamsPerSecond).toFixed(2)}×`,
      `  added p50 latency: ${((sy.latencyP50 - d.latencyP50) / (pk.latencyP50 - d.latencyP50)).toFixed(2)}×`,
      `  added TTFB p50: ${((sy.ttfbP50 - d.ttfbP50) / (pk.ttfbP50 - d.ttfbP50)).toFixed(2)}×`,
    );
  }
  const bare = summaries.get("bare");
  if (sy && bare) {
    lines.push(
      "",
      "Roundhouse beyond the bare proxy (what its own work costs)",
      `  added p50 latency: ${signed(sy.latencyP50 - bare.latencyP50)}; requests/s at c=${s.concurrency}: ${(sy.requestsPerSecond / bare.requestsPerSecond).toFixed(2)}× the bare proxy's; streams: ${(sy.streamsPerSecond / bare.streamsPerSecond).toFixed(2)}×`,
    );
  }
  if (sy) {
    const added = sy.latencyP50 - d.latencyP50;
    const ttfb = sy.ttfbP50 - d.ttfbP50;
    lines.push(
      "",
      "Goals (cache, telemetry and A/B on)",
      `  added p50 latency ≤ 0.25 ms:        ${signed(added).padStart(12)}  ${added <= 0.25 ? "met" : "MISSED"}`,
      ...(pk
        ? [
            `  requests/s ≥ 5× Portkey's at c=${s.concurrency}: ${`${(sy.requestsPerSecond / pk.requestsPerSecond).toFixed(2)}×`.padStart(8)}  ${sy.requestsPerSecond >= 5 * pk.requestsPerSecond ? "met" : "MISSED"}`,
          ]
        : []),
      `  stream TTFB overhead ≤ 1 ms:        ${signed(ttfb).padStart(12)}  ${ttfb <= 1 ? "met" : "MISSED"}`,
    );
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------- main

export async function runUpstreamBench(): Promise<void> {
  const s = settings();
  process.once("SIGINT", () => {
    for (const c of live) c.kill("SIGKILL");
    process.exit(130);
  });
  process.on("exit", () => {
    for (const c of live) c.kill("SIGKILL");
  });
  const busy = await busyCores(1_000);
  if (busy !== undefined && busy > 0.25) {
    progress(
      `warning: ${busy.toFixed(1)} of ${cpus().length} cores are busy before the bench starts; numbers will be noisy`,
    );
  }
  const work = mkdtempSync(join(tmpdir(), "roundhouse-bench-upstream-"));
  const procs: Proc[] = [];
  const agents: Agent[] = [];
  try {
    const fakePort = await freePort();
    const fakeLog = join(work, "fake.log");
    const fake = start(
      "fake upstream",
      ["--import", "tsx", join("bench", "upstream-fake.ts")],
      { ...process.env, PORT: String(fakePort), PIECES: String(s.pieces), PACE_MS: String(s.paceMs) },
      fakeLog,
    );
    procs.push(fake);
    const upstream = `http://127.0.0.1:${fakePort}/v1`;
    await waitHealthy(fake, `http://127.0.0.1:${fakePort}/health`, fakeLog);

    const syPort = await freePort();
    const syDir = join(work, "roundhouse");
    mkdirSync(syDir, { recursive: true });
    const syConfig = join(syDir, "models.yaml");
    writeFileSync(syConfig, `${JSON.stringify(roundhouseConfig(syPort, upstream, s), null, 2)}\n`);
    const syLog = join(work, "roundhouse.log");
    progress("starting Roundhouse …");
    const roundhouse = start(
      "roundhouse",
      [...s.nodeArgs, "--import", "tsx", "src/main.ts"],
      {
        ...process.env,
        MODELS_CONFIG: syConfig,
        DATA_DIR: join(syDir, "data"),
        LOG_LEVEL: s.logLevel,
        PORT: String(syPort),
        HOST: "127.0.0.1",
      },
      syLog,
    );
    procs.push(roundhouse);
    await waitHealthy(roundhouse, `http://127.0.0.1:${syPort}/healthz`, syLog);

    const agent = () => {
      const a = new Agent({ keepAlive: true, maxSockets: 256 });
      agents.push(a);
      return a;
    };
    const targets: Target[] = [
      { name: "direct", url: new URL(`${upstream}/chat/completions`), headers: {}, agent: agent(), proc: fake },
      {
        name: "roundhouse",
        url: new URL(`http://127.0.0.1:${syPort}/v1/chat/completions`),
        headers: {},
        agent: agent(),
        proc: roundhouse,
      },
    ];
    if (s.bare) {
      const barePort = await freePort();
      const bareLog = join(work, "bare.log");
      const bare = start(
        "bare proxy",
        ["--import", "tsx", join("bench", "upstream-bare.ts")],
        { ...process.env, PORT: String(barePort), UPSTREAM: upstream },
        bareLog,
      );
      procs.push(bare);
      await waitHealthy(bare, `http://127.0.0.1:${barePort}/health`, bareLog);
      targets.splice(1, 0, {
        name: "bare",
        url: new URL(`http://127.0.0.1:${barePort}/v1/chat/completions`),
        headers: {},
        agent: agent(),
        proc: bare,
      });
    }
    let portkeyNote = "";
    if (s.portkey) {
      try {
        const entry = ensurePortkey(portkeyDir(), progress);
        const pkPort = await freePort();
        const pkLog = join(work, "portkey.log");
        progress("starting Portkey …");
        const portkey = start(
          "portkey",
          portkeyCommand(entry, pkPort),
          { ...process.env, NODE_ENV: "production" },
          pkLog,
          portkeyDir(),
        );
        procs.push(portkey);
        await waitHealthy(portkey, `http://127.0.0.1:${pkPort}/`, pkLog);
        targets.push({
          name: "portkey",
          url: new URL(`http://127.0.0.1:${pkPort}/v1/chat/completions`),
          headers: portkeyHeaders(upstream),
          agent: agent(),
          proc: portkey,
        });
        portkeyNote = `Portkey ${PORTKEY_VERSION} (hono 4.9.7, @hono/node-server 1.13.5)`;
      } catch (err) {
        progress(`Portkey left out: ${(err as Error).message}`);
        portkeyNote = "Portkey left out (see above)";
      }
    }

    // Warm-up, unmeasured: JIT, pooled connections, the caches' first entries. A few thousand
    // requests: with 500, Roundhouse's first measured round still ran half-optimised code
    // (475 µs CPU a request against 219 µs in the third round of the same run).
    progress("warming up …");
    for (const t of targets) {
      await sequential(t, 200, "instant", false);
      await closedLoop(t, 3000, s.concurrency);
      await sequential(t, 10, "paced", true);
    }

    const raw = new Map<TargetName, Raw>(
      targets.map((t) => [t.name, { latency: [], ttfb: [], throughput: [], streams: [] }]),
    );
    for (let round = 0; round < s.rounds; round++) {
      // Rotate the order each round, so no target always runs first (or last).
      const order = targets.map((_, i) => targets[(i + round) % targets.length] as Target);
      for (const t of s.phases.has("latency") ? order : []) {
        const r = raw.get(t.name) as Raw;
        r.latency.push(...(await sequential(t, s.latencyRequests, "instant", false)).map((x) => x.totalMs));
      }
      for (const t of s.phases.has("throughput") ? order : []) {
        const run = await closedLoop(t, s.throughputRequests, s.concurrency);
        (raw.get(t.name) as Raw).throughput.push(run);
        progress(
          `  round ${round + 1}/${s.rounds}  ${t.name.padEnd(10)} ${(run.requests / (run.wallMs / 1000)).toFixed(0).padStart(6)} req/s` +
            (run.cpuSeconds === undefined
              ? ""
              : `  ${((run.cpuSeconds * 1e6) / run.requests).toFixed(0)} µs CPU/request`),
        );
      }
      for (const t of s.phases.has("streams") ? order : []) {
        const run = await closedLoop(t, s.streamsRequests, s.concurrency, true);
        (raw.get(t.name) as Raw).streams.push(run);
        progress(
          `  round ${round + 1}/${s.rounds}  ${t.name.padEnd(10)} ${(run.requests / (run.wallMs / 1000)).toFixed(0).padStart(6)} streams/s`,
        );
      }
      for (const t of s.phases.has("stream") ? order : []) {
        const r = raw.get(t.name) as Raw;
        r.ttfb.push(...(await sequential(t, s.streamRequests, "paced", true)).map((x) => x.ttfbMs ?? Number.NaN));
      }
    }

    const summaries = new Map([...raw].map(([name, r]) => [name, summarise(r)]));
    const header =
      `Upstream overhead: fake upstream on loopback (${s.pieces} chunks, paced streams ${s.paceMs} ms apart), ` +
      `${s.rounds} rounds × ${s.latencyRequests} sequential + ${s.throughputRequests} at c=${s.concurrency} + ` +
      `${s.streamRequests} paced streams + ${s.streamsRequests} streams at c=${s.concurrency} per target; ${portkeyNote || "Portkey not run"}; ${cpus().length} cores (${cpus()[0]?.model ?? "?"})`;
    process.stdout.write(`\n${header}\n\n${report(s, summaries)}\n`);

    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, "upstream-latest.json");
    writeFileSync(
      file,
      `${JSON.stringify(
        {
          finishedAt: new Date().toISOString(),
          machine: {
            cores: cpus().length,
            cpuModel: cpus()[0]?.model,
            node: process.version,
            busyCoresAtStart: busy,
            loadavgAtEnd: loadavg(),
          },
          settings: s,
          summaries: Object.fromEntries(summaries),
          raw: Object.fromEntries(raw),
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`\nraw results: ${file}\n`);
  } finally {
    for (const a of agents) a.destroy();
    await Promise.allSettled(procs.map((p) => p.stop()));
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  runUpstreamBench().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
