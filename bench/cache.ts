// Response cache benchmark: latency of a hit (memory and Redis) against a miss on the
// built-in model, measured server-side (from the usage records telemetry writes) and
// client-side over loopback HTTP, in the same run.
//
//   npx tsx bench/cache.ts            HITS=500 MISSES=20 to change the sample sizes
//
// Redis: a private redis-server on a spare port (started and stopped here).

import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "@hono/node-server";
import pino from "pino";
import { createApp } from "../src/app.ts";
import { parseConfig } from "../src/config/load.ts";
import { openRuntime } from "../src/engine/runtime.ts";
import { createServices } from "../src/services.ts";
import { privateRedis } from "../test/helpers/redis.ts";

const REPO = join(import.meta.dirname, "..");
const MODEL = process.env.SWITCHYARD_TEST_MODEL ?? join(REPO, "models", "switchyard-tiny-q8_0.gguf");
const HITS = Number(process.env.HITS ?? 300);
const MISSES = Number(process.env.MISSES ?? 20);

interface Timings {
  serverMs: number[];
  clientMs: number[];
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

async function measure(cacheLine: string): Promise<{ hit: Timings; miss: Timings }> {
  const dataDir = mkdtempSync(join(tmpdir(), "switchyard-bench-cache-"));
  const config = parseConfig(
    [
      cacheLine,
      "models:",
      "  - id: tiny",
      "    provider: llama",
      `    path: ${MODEL}`,
      "    context_size: 512",
      "    threads: 1",
      "    preload: true",
    ].join("\n"),
    join(REPO, "models.yaml"),
  );
  const services = await createServices({
    config,
    dataDir,
    llama: await openRuntime({ gpu: false }),
    logger: pino({ level: "silent" }),
  });
  await services.preload();
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: createApp(services).fetch, hostname: "127.0.0.1", port: 0 }, () =>
      resolve(s as Server),
    ) as Server;
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;
  const body = JSON.stringify({
    model: "tiny",
    messages: [{ role: "user", content: "What is the capital of France?" }],
    temperature: 0,
    max_tokens: 32,
  });
  const client: Record<"hit" | "miss", number[]> = { hit: [], miss: [] };
  const send = async (headers: Record<string, string>) => {
    const started = performance.now();
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    await res.arrayBuffer();
    const status = res.headers.get("x-switchyard-cache");
    if (status === "hit" || status === "miss") client[status].push(performance.now() - started);
  };
  await send({});
  for (let i = 0; i < MISSES; i++) await send({ "cache-control": "no-cache" });
  for (let i = 0; i < HITS; i++) await send({});
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await services.close();
  const serverMs: Record<"hit" | "miss", number[]> = { hit: [], miss: [] };
  for await (const record of services.telemetry.usage.query(new Date(0), new Date(Date.now() + 60_000))) {
    if (record.cache === "hit" || record.cache === "miss") serverMs[record.cache].push(record.latency_ms);
  }
  rmSync(dataDir, { recursive: true, force: true });
  return {
    hit: { serverMs: serverMs.hit, clientMs: client.hit },
    miss: { serverMs: serverMs.miss, clientMs: client.miss },
  };
}

const fmt = (n: number) => n.toFixed(2).padStart(8);
const redis = await privateRedis();
await redis.start();
try {
  const rows: [string, { hit: Timings; miss: Timings }][] = [
    ["memory", await measure("cache: {store: memory}")],
    ["redis", await measure(`cache: {store: redis, url: "${redis.url}"}`)],
  ];
  console.log(`cache benchmark: ${HITS} hits, ${MISSES} misses per store, model ${MODEL}`);
  console.log("store   | hit p50 ms | hit p99 ms | miss p50 ms | hit/miss p50 | client hit p50 | client hit p99");
  for (const [name, t] of rows) {
    const hitP50 = quantile(t.hit.serverMs, 0.5);
    const missP50 = quantile(t.miss.serverMs, 0.5);
    console.log(
      `${name.padEnd(7)} | ${fmt(hitP50)}   | ${fmt(quantile(t.hit.serverMs, 0.99))}   | ${fmt(missP50)}    | ${(hitP50 / missP50).toFixed(4).padStart(10)}   | ${fmt(quantile(t.hit.clientMs, 0.5))}       | ${fmt(quantile(t.hit.clientMs, 0.99))}`,
    );
  }
  console.log("server-side = the usage record's latency_ms (request in → last byte out); goal: redis hit p99 ≤ 2 ms");
} finally {
  await redis.stop();
}
