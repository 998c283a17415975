// Configs that cannot work fail at start, naming file:line:field (#21 item 10): a model file
// that is missing or not a GGUF, a context that cannot fit in memory, rerank on a model without a
// classification head, a draft model of another vocabulary; a context_size past the
// trained context is lowered unless allow_context_overflow; SIGTERM during a load ends the process
// without waiting for the load.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/errors.ts";
import { patchGgufMetadata } from "../../src/engine/gguf.ts";
import { type MainProcess, startMain } from "../helpers/main-process.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

const dir = mkdtempSync(join(tmpdir(), "roundhouse-startup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let s: TestServer | undefined;
afterEach(async () => {
  await s?.close();
  s = undefined;
});

const config = (path: string, extra: string[] = []) =>
  [
    "models:",
    "  - id: m",
    "    provider: llama",
    `    path: ${path}`,
    "    threads: 1",
    ...extra.map((l) => `    ${l}`),
  ].join("\n");

async function startError(text: string): Promise<ConfigError> {
  const err = await startServer({ config: text }).then(
    (started) => {
      s = started;
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ConfigError);
  return err as ConfigError;
}

describe("checked before listening", () => {
  it("refuses a model file that does not exist", async () => {
    const err = await startError(config("/nonexistent/model.gguf"));
    expect([err.line, err.field]).toEqual([4, "models[0].path"]);
    expect(err.message).toContain("file not found: /nonexistent/model.gguf");
  });

  it("refuses a file that is not a GGUF", async () => {
    const notGguf = join(dir, "weights.bin");
    writeFileSync(notGguf, "PK\u0003\u0004 not a model");
    const err = await startError(config(notGguf));
    expect(err.field).toBe("models[0].path");
    expect(err.message).toContain('is not a GGUF file (it does not begin with "GGUF")');
  });

  it("refuses a context that cannot fit in this machine's memory, with the numbers", async () => {
    const err = await startError(
      config(TINY_MODEL, ["context_size: 100000000", "parallel: 64", "allow_context_overflow: true"]),
    );
    expect([err.line, err.field]).toEqual([6, "models[0].context_size"]);
    expect(err.message).toMatch(
      /m needs about [\d.]+ GiB \(model \d+ MiB \+ context [\d.]+ GiB for context_size 100000000 × parallel 64\), more than this machine's [\d.]+ GiB of RAM/,
    );
  });

  it("refuses a model that lists rerank but has no classification head", async () => {
    const err = await startError(config(TINY_MODEL, ["operations: [chat, rerank]"]));
    expect([err.line, err.field]).toEqual([6, "models[0].operations"]);
    expect(err.message).toContain("m lists rerank, but its GGUF cannot rerank: it has no classification head");
  });

  it("refuses a draft model that does not share the model's vocabulary, naming the token", async () => {
    const other = join(dir, "other-vocab.gguf");
    await patchGgufMetadata(TINY_MODEL, other, (m) => {
      const tokens = m.get("tokenizer.ggml.tokens");
      if (tokens?.type !== "array" || tokens.itemType !== "string") throw new Error("no token list");
      tokens.value = tokens.value.map((t, id) => (id === 300 ? "zebra" : t));
    });
    const err = await startError(config(TINY_MODEL, [`speculative: {method: draft, model: ${other}}`]));
    expect([err.line, err.field]).toEqual([6, "models[0].speculative.model"]);
    expect(err.message).toContain('token 300 is "zebra" in it');
    expect(err.message).toContain("a draft must share its vocabulary");
    const missing = await startError(config(TINY_MODEL, ["speculative: {method: draft, model: /nonexistent/d.gguf}"]));
    expect(missing.message).toContain("file not found: /nonexistent/d.gguf");
  });

  it("refuses a model bigger than memory_budget", async () => {
    const err = await startError(`memory_budget: 1MiB\n${config(TINY_MODEL)}`);
    expect(err.field).toBe("models[0].context_size");
    expect(err.message).toContain("more than memory_budget (1 MiB)");
  });

  it("lowers context_size to the trained context unless allow_context_overflow", async () => {
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
    s = await startServer({ config: config(TINY_MODEL, ["context_size: 100000000", "parallel: 64"]), logger });
    expect(s.services.pool.spec("m")?.contextSize).toBe(2048);
    expect(lines.join("")).toContain(
      "models[0].context_size: 100000000 is more than the 2048 tokens m was trained on; using 2048",
    );
    await s.close();
    s = await startServer({ config: config(TINY_MODEL, ["context_size: 4096", "allow_context_overflow: true"]) });
    expect(s.services.pool.spec("m")?.contextSize).toBe(4096);
  });
});

describe("SIGTERM during a load", () => {
  let main: MainProcess | undefined;
  afterAll(() => {
    if (main?.child.exitCode === null) main.child.kill("SIGKILL");
  });

  it("stops the process without waiting for the load to finish", async () => {
    // ~1 GiB of context: a load of about a second here, one native call no signal interrupts.
    const file = join(dir, "slow.yaml");
    writeFileSync(
      file,
      config(TINY_MODEL, ["context_size: 500000", "parallel: 1", "allow_context_overflow: true", "preload: true"]),
    );
    main = await startMain({ MODELS_CONFIG: file, DATA_DIR: join(dir, "data"), LOG_LEVEL: "info" });
    const current = main;
    // Listening comes before the preload: the first answer from /healthz is while it loads.
    for (;;) {
      if (current.child.exitCode !== null) throw new Error(`server exited:\n${current.output()}`);
      const status = await fetch(`${current.url}/healthz`).then(
        (r) => r.status,
        () => 0,
      );
      if (status !== 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const sent = performance.now();
    current.child.kill("SIGTERM");
    const code = await current.exited;
    const seconds = (performance.now() - sent) / 1000;
    expect(seconds, current.output()).toBeLessThan(10);
    expect(code, current.output()).toBe(0);
    // It did not wait for the load: the model never finished loading.
    expect(current.output()).not.toContain('"msg":"model loaded"');
  }, 60_000);
});
