import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/errors.ts";
import type { ModelLease } from "../../src/engine/pool.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

let s: TestServer | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const model = (id: string, extra: string[] = []) =>
  [
    `  - id: ${id}`,
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    context_size: 256",
    "    threads: 1",
    ...extra.map((l) => `    ${l}`),
  ].join("\n");

async function chat(server: TestServer, modelId: string, maxTokens = 4) {
  return fetch(`${server.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      model: modelId,
      messages: [{ role: "user", content: "Hello!" }],
      max_tokens: maxTokens,
      temperature: 1,
    }),
  });
}

describe("model pool", () => {
  it("loads on first use and unloads the least recently used idle model at max_loaded_models", async () => {
    s = await startServer({
      config: ["max_loaded_models: 2", "models:", model("a"), model("b"), model("c")].join("\n"),
    });
    expect(s.services.pool.loadedIds).toEqual([]);
    expect((await chat(s, "a")).status).toBe(200);
    expect((await chat(s, "b")).status).toBe(200);
    expect((await chat(s, "a")).status).toBe(200);
    expect(s.services.pool.loadedIds.sort()).toEqual(["a", "b"]);
    expect((await chat(s, "c")).status).toBe(200);
    expect(s.services.pool.loadedIds.sort()).toEqual(["a", "c"]);
  });

  it("answers 429 with Retry-After when the wait queue is full, and serves the rest", async () => {
    s = await startServer({
      config: [
        "models:",
        model("one", ["parallel: 1", "preload: true", "queue: {max_waiting: 1, timeout_ms: 30000}"]),
      ].join("\n"),
    });
    const server = s;
    const results = await Promise.all([1, 2, 3, 4].map(() => chat(server, "one", 40)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 200, 429, 429]);
    const refused = results.find((r) => r.status === 429);
    expect(Number(refused?.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await refused?.json()) as { error: { type: string; code: string } };
    expect(body.error.code).toBe("rate_limit_exceeded");
    // Recovered at once when load drops.
    expect((await chat(server, "one")).status).toBe(200);
  });

  it("answers 503 when a request waits longer than the queue timeout", async () => {
    s = await startServer({
      config: [
        "models:",
        model("one", ["parallel: 1", "preload: true", "queue: {max_waiting: 4, timeout_ms: 1}"]),
      ].join("\n"),
    });
    const server = s;
    const results = await Promise.all([1, 2].map(() => chat(server, "one", 60)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 503]);
  });

  it("runs a request where the running sequences stay consecutive, so a decode step is one pass", async () => {
    s = await startServer({
      config: ["models:", model("m", ["parallel: 4", "preload: true"])].join("\n"),
    });
    const pool = s.services.pool;
    const leases: ModelLease[] = [];
    const lease = async () => {
      const l = await pool.acquire("m", 1);
      await l.preferPrefix([1, 2, 3] as Token[]);
      leases.push(l);
      return l;
    };
    const index = (l: ModelLease) => l.loaded.sequences.indexOf(l.sequences[0] as LlamaContextSequence);
    try {
      const [a, b, c] = [await lease(), await lease(), await lease()];
      expect([a, b, c].map(index)).toEqual([0, 1, 2]);
      // Sequence 1 is now the most recently used and 3 was never used: running on 3 would
      // leave {0, 2, 3}, two passes a step, so the next request takes 1 again.
      b.release();
      expect(index(await lease())).toBe(1);
    } finally {
      for (const l of leases) l.release();
    }
  });

  it("creates the tiny model's contexts without flash attention under auto on the CPU, with it when asked", async () => {
    // Its heads are 16 wide, where the CPU kernel is 2.5-4.6x slower on short prompt chunks (flash-attention.ts).
    s = await startServer({
      config: [
        "models:",
        model("auto", ["preload: true"]),
        model("on", ["preload: true", "flash_attention: true"]),
      ].join("\n"),
    });
    expect(s.services.pool.get("auto")?.context.flashAttention).toBe(false);
    expect(s.services.pool.get("on")?.context.flashAttention).toBe(true);
    // Set on the model, so its embedding and rerank contexts (made later, from the model's default) follow.
    expect(s.services.pool.get("auto")?.model.defaultContextFlashAttention).toBe(false);
    expect(s.services.pool.get("on")?.model.defaultContextFlashAttention).toBe(true);
    expect((await chat(s, "auto")).status).toBe(200);
  });

  it("refuses at start a model whose file does not match its sha256 pin, naming the field", async () => {
    const config = ["models:", model("pinned", [`sha256: "${"0".repeat(64)}"`])].join("\n");
    const err = await startServer({ config }).then(
      (started) => {
        s = started;
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe("models[0].sha256");
    expect((err as ConfigError).message).toContain(`not the pinned ${"0".repeat(64)}`);
  });
});
