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

/** The request body, made before any timing starts: writing 730 KiB of JSON takes the test's own time. */
function body(schema: Record<string, unknown>): string {
  return JSON.stringify({
    model: "tiny",
    messages: [{ role: "user", content: "Pick one." }],
    response_format: { type: "json_schema", json_schema: { name: "pick", schema } },
    max_tokens: 4,
  });
}

function ask(payload: string) {
  return fetch(`${main.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: payload,
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
    const res = await ask(body({ type: "string", enum: enumOf(20_000, "big") }));
    expect(res.status).toBe(400);
    const answer = (await res.json()) as { error: { message: string; param: string } };
    expect(answer.error.param).toBe("response_format");
    expect(answer.error.message).toMatch(/the limit is 65536 bytes/);
  });

  it("keeps /healthz under 100 ms while such requests run", async () => {
    // The machine is shared: /healthz is also timed with nothing else sent for as long, and a
    // round is judged by how much slower it answered than that. Rounds use fresh schemas (no
    // grammar reuse); the first warms the server up. The best of the other rounds is judged:
    // with the grammar built on the event loop every round held it for seconds (1.4-3.3 s
    // measured), while on a machine at a load of 10+ a round can lose 100-300 ms to other work.
    const extra: number[] = [];
    const report: string[] = [];
    const statuses: number[][] = [];
    for (const round of ["a", "b", "c", "d", "e"]) {
      const payloads = [
        body({ type: "string", enum: enumOf(20_000, round) }),
        body({ type: "string", enum: enumOf(1_000, round) }),
      ];
      let took = 0;
      const busy = await slowestHealthz(async () => {
        const started = performance.now();
        statuses.push(await Promise.all(payloads.map((p) => ask(p).then((r) => r.status))));
        took = performance.now() - started;
      });
      const idle = await slowestHealthz(() => new Promise((r) => setTimeout(r, Math.max(took, 200))));
      extra.push(busy - idle);
      report.push(`${Math.round(busy)} (idle ${Math.round(idle)})`);
    }
    const judged = extra.slice(1);
    const message = `slowest /healthz per round, ms: ${report.join(", ")}`;
    expect(Math.min(...judged), message).toBeLessThan(100);
    expect(Math.max(...judged), message).toBeLessThan(1000);
    expect(statuses).toEqual(Array.from({ length: 5 }, () => [400, 200]));
  }, 120_000);
});
