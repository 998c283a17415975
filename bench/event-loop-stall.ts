// `npx tsx bench/event-loop-stall.ts`: how long one request's per-request work holds the event
// loop (#21: a 20,000-value enum took seconds to become a grammar while /healthz waited).
// Starts Roundhouse in this process on the built-in model, sends each request below once while
// /healthz is probed every 5 ms, and prints the longest event-loop delay (perf_hooks histogram,
// 1 ms resolution) and the slowest /healthz answer seen meanwhile. Nothing asserts a timing.
import { mkdtempSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import pino from "pino";
import { createHttpServer } from "../routes/http-server.ts";
import { createApp } from "../src/app.ts";
import { parseConfig } from "../src/config/load.ts";
import { createServices } from "../src/services.ts";

const MODEL = join(import.meta.dirname, "..", "models", "roundhouse-tiny-q8_0.gguf");
const CONTEXT = Number(process.env.STALL_CONTEXT_SIZE ?? 65536);

const config = [
  "models:",
  "  - id: tiny",
  "    provider: llama",
  `    path: ${MODEL}`,
  `    context_size: ${CONTEXT}`,
  "    allow_context_overflow: true",
  "    parallel: 1",
  "    threads: 1",
  "    preload: true",
].join("\n");

const enumOf = (n: number) => Array.from({ length: n }, (_, i) => `value-number-${i}-abcdefghijklmnop`);
const cases: { name: string; body: Record<string, unknown> }[] = [
  {
    name: "json_schema enum of 20,000 values",
    body: schemaRequest({ type: "string", enum: enumOf(20_000) }),
  },
  {
    name: "json_schema enum of 1,000 values (the limit)",
    body: schemaRequest({ type: "string", enum: enumOf(1_000) }),
  },
  {
    // Tokenized in full, then refused: longer than the context (the cost is the tokenizing).
    name: `a 256 KiB prompt (about 87k tokens) for a ${CONTEXT}-token context`,
    body: {
      model: "tiny",
      messages: [{ role: "user", content: "the cat sat on the mat and ".repeat(Math.floor((256 * 1024) / 27)) }],
      max_tokens: 1,
    },
  },
];

function schemaRequest(schema: Record<string, unknown>) {
  return {
    model: "tiny",
    messages: [{ role: "user", content: "Pick one." }],
    response_format: { type: "json_schema", json_schema: { name: "pick", schema } },
    max_tokens: 8,
  };
}

const dataDir = mkdtempSync(join(tmpdir(), "roundhouse-stall-"));
const services = await createServices({
  config: parseConfig(config, join(tmpdir(), "models.yaml")),
  dataDir,
  logger: pino({ level: "silent" }),
  gpu: false,
});
await services.preload();
const server = createHttpServer(createApp(services), { hostname: "127.0.0.1" });
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

for (const c of cases) {
  const body = JSON.stringify(c.body);
  // Twice: the second shows what a repeated schema costs.
  for (const round of [1, 2]) {
    const histogram = monitorEventLoopDelay({ resolution: 1 });
    histogram.enable();
    let done = false;
    let slowest = 0;
    const probes = (async () => {
      while (!done) {
        const t = performance.now();
        await fetch(`${url}/healthz`).then((r) => r.arrayBuffer());
        slowest = Math.max(slowest, performance.now() - t);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const started = performance.now();
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const text = await res.text();
    const took = performance.now() - started;
    done = true;
    await probes;
    histogram.disable();
    const message = res.status === 200 ? "" : ` ${JSON.parse(text).error?.message?.slice(0, 110)}`;
    console.log(
      `${c.name} (${(body.length / 1024).toFixed(0)} KiB, round ${round}): ${res.status} in ${took.toFixed(0)} ms;` +
        ` event loop blocked up to ${(histogram.max / 1e6).toFixed(0)} ms; slowest /healthz ${slowest.toFixed(0)} ms.${message}`,
    );
  }
}

server.closeAllConnections();
server.close();
await services.close();
rmSync(dataDir, { recursive: true, force: true });
