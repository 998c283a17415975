// No request stalls the others (#21): a json_schema whose grammar would take seconds to build on
// the event loop (a 20,000-value enum, ~730 KiB) is refused with a 400 naming the limit, and the
// largest schema accepted is built without holding the loop, so /healthz keeps answering fast.
// The server runs in its own process, so the test's own work (writing a 730 KiB body) does not
// count against it.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { killHard, type MainProcess, startMain, waitHealthy } from "../helpers/main-process.ts";
import { tinyConfig } from "../helpers/server.ts";

let dir: string;
let main: MainProcess;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roundhouse-stalls-"));
  writeFileSync(join(dir, "models.yaml"), tinyConfig());
  main = await startMain({ MODELS_CONFIG: join(dir, "models.yaml"), DATA_DIR: join(dir, "data") });
  await waitHealthy(main);
}, 90_000);
afterAll(async () => {
  if (main) await killHard(main);
  rmSync(dir, { recursive: true, force: true });
});

const enumOf = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}-value-${i}-abcdefghijklmnop`);

function ask(schema: Record<string, unknown>) {
  return fetch(`${main.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: "tiny",
      messages: [{ role: "user", content: "Pick one." }],
      response_format: { type: "json_schema", json_schema: { name: "pick", schema } },
      max_tokens: 4,
    }),
  });
}

/** The slowest /healthz answer while `work` runs, probing one after another every 10 ms. */
async function slowestHealthz(work: () => Promise<unknown>): Promise<number> {
  let done = false;
  let slowest = 0;
  const probes = (async () => {
    while (!done) {
      const t = performance.now();
      const res = await fetch(`${main.url}/healthz`);
      await res.arrayBuffer();
      slowest = Math.max(slowest, performance.now() - t);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await work();
  } finally {
    done = true;
    await probes;
  }
  return slowest;
}

describe("per-request work that grows with the schema", () => {
  it("refuses a 20,000-value enum with a 400 naming the limit", async () => {
    const res = await ask({ type: "string", enum: enumOf(20_000, "big") });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string; param: string } };
    expect(body.error.param).toBe("response_format");
    expect(body.error.message).toMatch(/the limit is 65536 bytes/);
  });

  it("keeps /healthz under 100 ms while such requests run", async () => {
    const slowest: number[] = [];
    const statuses: number[][] = [];
    // Three rounds with fresh schemas (no grammar reuse); the first warms the server up.
    for (const round of ["a", "b", "c"]) {
      slowest.push(
        await slowestHealthz(async () => {
          statuses.push(
            await Promise.all([
              ask({ type: "string", enum: enumOf(20_000, round) }).then((r) => r.status),
              ask({ type: "string", enum: enumOf(1_000, round) }).then((r) => r.status),
            ]),
          );
        }),
      );
    }
    const rounds = slowest.map(Math.round).join(", ");
    expect(Math.max(...slowest.slice(1)), `slowest /healthz per round: ${rounds} ms`).toBeLessThan(100);
    expect(statuses).toEqual([
      [400, 200],
      [400, 200],
      [400, 200],
    ]);
  }, 120_000);
});
