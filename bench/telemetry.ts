// `npx tsx bench/telemetry.ts`: CPU that recording costs per request, measured with
// process.cpuUsage() (user + system, every thread, so the usage log's disk writes in libuv's
// pool count too) over N simulated requests, minus the same loop without telemetry.
//
// One simulated request: begin → requested → watch a provider stream of one content delta
// and a finish → end → buildRecord + reference cost + metrics + usage log append + the
// pino "request" line (to /dev/null through pino's asynchronous destination, buffered as the
// server's). The budget is 20 µs a request. N: BENCH_N (default 100000).
//
// BENCH_REDIS_URL=redis://127.0.0.1:6379 measures the Redis-stream usage log (models.yaml
// `usage_log: {store: redis}`) instead of the JSONL files: its pipelined XADDs count as this
// process's CPU, Redis's own work does not.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { EventQueue } from "../src/providers/event-queue.ts";
import type { ChatEvent, ChatStream } from "../src/providers/provider.ts";
import { LOG_BUFFER_BYTES } from "../src/services.ts";
import { buildRecord, type RequestFacts } from "../src/telemetry/record.ts";
import { Telemetry } from "../src/telemetry/telemetry.ts";

const N = Number(process.env.BENCH_N ?? 100_000);
const BUDGET_US = 20;

function providerStream(deltas = 1): ChatStream {
  const queue = new EventQueue<ChatEvent>();
  for (let i = 0; i < deltas; i++) queue.push({ type: "content", index: 0, text: "Hello" });
  queue.push({ type: "finish", index: 0, reason: "stop" });
  queue.end();
  return { events: queue, usage: () => ({ promptTokens: 42, completionTokens: 17 }) };
}

async function consume(events: AsyncIterable<ChatEvent>): Promise<void> {
  for await (const _ of events) {
    // the route would write each chunk out here
  }
}

/** µs of CPU per iteration of `body`, after a warm-up of a tenth of the runs. */
async function cpuPerRun(
  runs: number,
  body: (i: number) => Promise<void> | void,
  settle: () => Promise<void> = async () => {},
): Promise<number> {
  for (let i = 0; i < runs / 10; i++) await body(i);
  const before = process.cpuUsage();
  for (let i = 0; i < runs; i++) await body(i);
  // Let the last records and log lines go out before reading the clock.
  await new Promise((resolve) => setTimeout(resolve, 50));
  // ...and the usage log's buffer written out, so its writes are in the figure.
  await settle();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / runs;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), "roundhouse-bench-telemetry-"));
  // Buffered as the server's own log is (src/services.ts): a write(2) per line would be the
  // bench's cost, not the server's.
  const logger = pino(
    { level: "info" },
    pino.destination({ dest: "/dev/null", sync: false, minLength: LOG_BUFFER_BYTES }),
  );
  const redisUrl = process.env.BENCH_REDIS_URL;
  const telemetry = new Telemetry({
    logger,
    dataDir,
    ...(redisUrl
      ? { usageStore: { store: "redis" as const, url: redisUrl, maxRecords: 1_000_000, maxBuffered: 1_000_000 } }
      : {}),
    prices: new Map([["tiny", { model: "gpt-4o-mini", input_per_1m: 0.15, output_per_1m: 0.6 }]]),
    models: () => [{ model: "tiny", loaded: true, busy: 1, waiting: 0, kvCacheUsage: 0.25, promptCacheBytes: 0 }],
  });
  telemetry.modelLoaded("tiny", 0.5, (text) => Math.round(text.length / 4));
  const target = { id: "tiny", provider: "llama" };
  const body = { model: "tiny", messages: [], stream: false };

  const request = async (i: number, deltas: number) => {
    const t = telemetry.begin(`req-${i}`, "Bearer sk-bench");
    t.requested(body, target);
    const stream = t.watch(providerStream(deltas));
    await consume(stream.events);
    t.end(200, false);
    await Promise.resolve();
  };
  // Both logs have flush(); the UsageLog interface does not need it.
  const usage = telemetry.usage as typeof telemetry.usage & { flush?: () => Promise<void> };
  const written = async () => {
    await usage.flush?.();
  };
  const baseline = await cpuPerRun(N, () => consume(providerStream().events));
  const full = await cpuPerRun(N, (i) => request(i, 1), written);
  // Watching a stream costs a little per delta (timestamps of the first and last).
  const runs = N / 10;
  const long =
    (await cpuPerRun(runs, (i) => request(i, 101), written)) -
    (await cpuPerRun(runs, () => consume(providerStream(101).events)));
  const perDelta = (long - (full - baseline)) / 100;

  // The parts, for whoever needs to make it cheaper.
  const facts: RequestFacts = {
    requestId: "req",
    startedAt: Date.now(),
    keyId: "key_0123456789ab",
    model: "tiny",
    servedModel: "tiny",
    provider: "llama",
    stream: false,
    status: 200,
    clientDisconnected: false,
    usage: { promptTokens: 42, completionTokens: 17 },
    estimated: false,
    firstDeltaMs: 20,
    lastDeltaMs: 300,
    endMs: 310,
    fallbacks: 0,
  };
  const record = buildRecord(facts);
  const build = await cpuPerRun(N, () => void buildRecord(facts));
  const metrics = await cpuPerRun(N, () => telemetry.metrics.observe(record));
  const append = await cpuPerRun(N, () => telemetry.usage.append(record), written);
  const logLine = await cpuPerRun(N, () => logger.info({ requestId: record.request_id, record }, "request"));
  const discard = pino({ level: "info" }, { write: () => {} });
  const logJson = await cpuPerRun(N, () => discard.info({ requestId: record.request_id, record }, "request"));

  await telemetry.close();
  rmSync(dataDir, { recursive: true, force: true });

  const net = full - baseline;
  const fmt = (us: number) => `${us.toFixed(2).padStart(7)} µs`;
  console.log(
    `telemetry overhead, ${N} requests (process.cpuUsage, all threads), usage log: ${redisUrl ? "redis stream" : "JSONL files"}`,
  );
  console.log(`  request loop without telemetry ${fmt(baseline)}`);
  console.log(`  request loop with telemetry    ${fmt(full)}`);
  console.log(
    `  recording, per request         ${fmt(net)}   budget ${BUDGET_US} µs: ${net <= BUDGET_US ? "ok" : "OVER"}`,
  );
  console.log(`  plus, per streamed delta       ${fmt(perDelta)}`);
  console.log("  of which, measured alone:");
  console.log(`    buildRecord                  ${fmt(build)}`);
  console.log(`    metrics.observe              ${fmt(metrics)}`);
  console.log(`    usage log append (+ writes)  ${fmt(append)}`);
  console.log(`    pino "request" line          ${fmt(logLine)}`);
  console.log(`      of which building it       ${fmt(logJson)}   (the rest is pino writing it out)`);
  if (net > BUDGET_US) process.exitCode = 1;
}

await main();
