// The server as a user runs it: `tsx src/main.ts` in its own process.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { createServices } from "../../src/services.ts";
import { REPO, testRuntime, tinyConfig } from "../helpers/server.ts";

function startMain(env: Record<string, string>): {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "src", "main.ts")], {
    cwd: REPO,
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function waitHealthy(url: string, deadline = Date.now() + 30_000): Promise<void> {
  while (Date.now() < deadline) {
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not become healthy");
}

describe("npm start", () => {
  it("finishes in-flight requests on SIGTERM, then exits 0", async () => {
    const dir = mkdtempSync(join(tmpdir(), "roundhouse-main-"));
    const config = join(dir, "models.yaml");
    writeFileSync(config, tinyConfig());
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const main = startMain({ MODELS_CONFIG: config, PORT: String(port), DATA_DIR: join(dir, "data") });
    const url = `http://127.0.0.1:${port}`;
    await waitHealthy(url);

    const inFlight = fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "tiny",
        messages: [{ role: "user", content: "Hello!" }],
        max_tokens: 200,
        temperature: 1,
      }),
    });
    await new Promise((r) => setTimeout(r, 50));
    main.child.kill("SIGTERM");
    const res = await inFlight;
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { finish_reason: string }[] };
    expect(body.choices[0]?.finish_reason).toMatch(/stop|length/);
    expect(await main.exited).toBe(0);
    expect(main.output()).toContain("shutting down");
  });

  it("refuses a bad models.yaml naming file, line and field", async () => {
    const dir = mkdtempSync(join(tmpdir(), "roundhouse-main-"));
    const config = join(dir, "models.yaml");
    writeFileSync(config, tinyConfig("batch_size: four"));
    const main = startMain({ MODELS_CONFIG: config, PORT: "0" });
    expect(await main.exited).toBe(1);
    expect(main.output()).toMatch(/models\.yaml:\d+: models\[0\]\.batch_size/);
  });
});

describe("GET /healthz", () => {
  it("is 503 until the preloaded models are loaded, then 200", async () => {
    const services = await createServices({
      config: parseConfig(tinyConfig(), join(REPO, "models.yaml")),
      dataDir: mkdtempSync(join(tmpdir(), "roundhouse-health-")),
      llama: await testRuntime(),
      logger: pino({ level: "silent" }),
    });
    const app = createApp(services);
    const before = await app.request("/healthz");
    expect(before.status).toBe(503);
    expect(await before.json()).toMatchObject({ ready: false, status: "starting" });
    await services.preload();
    expect((await app.request("/healthz")).status).toBe(200);
    services.drain();
    expect((await app.request("/healthz")).status).toBe(503);
    await services.close();
  });
});
