// Fine-tuning through Redis: the server only queues (BullMQ); a separate `npm run worker`
// process sharing DATA_DIR trains; the server then serves the model the worker registered.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type PrivateRedis, privateRedis } from "../helpers/redis.ts";
import { REPO, startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

let redis: PrivateRedis;
let s: TestServer;
let worker: ChildProcess | undefined;
let dataDir: string;
let output = "";

beforeAll(async () => {
  redis = await privateRedis();
  await redis.start();
  dataDir = mkdtempSync(join(tmpdir(), "roundhouse-ftw-"));
  const config = [
    "fine_tuning:",
    `  redis_url: ${redis.url}`,
    "models:",
    "  - id: roundhouse-tiny",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    context_size: 256",
    "    threads: 1",
    "    finetune:",
    "      context: 64",
  ].join("\n");
  const configFile = join(dataDir, "models.yaml");
  writeFileSync(configFile, config);
  s = await startServer({ config, dataDir });
  worker = spawn(process.execPath, ["--import", "tsx", join(REPO, "scripts", "worker.ts")], {
    cwd: REPO,
    env: { ...process.env, MODELS_CONFIG: configFile, DATA_DIR: dataDir, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  worker.stderr?.on("data", (d: Buffer) => (output += d.toString()));
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const w = worker;
    await new Promise<void>((resolve) => {
      w.on("exit", () => resolve());
      w.kill("SIGTERM");
    });
  }
  await s?.close();
  await redis?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

it("a worker process trains the queued job and the server serves its model", async () => {
  const line = JSON.stringify({
    messages: [
      { role: "user", content: "What is the secret word?" },
      { role: "assistant", content: "The secret word is papaya." },
    ],
  });
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(Array(20).fill(line).join("\n")), "t.jsonl"),
    purpose: "fine-tune",
  });
  const job = await s.client.fineTuning.jobs.create({
    model: "roundhouse-tiny",
    training_file: file.id,
    hyperparameters: { n_epochs: 1 },
  });
  const until = Date.now() + 240_000;
  let current = job;
  while (!["succeeded", "failed", "cancelled"].includes(current.status)) {
    if (Date.now() > until) throw new Error(`job stuck in ${current.status}; worker output:\n${output}`);
    await new Promise((r) => setTimeout(r, 500));
    current = await s.client.fineTuning.jobs.retrieve(job.id);
  }
  expect(current.error).toBeNull();
  expect(current.status).toBe("succeeded");
  const model = current.fine_tuned_model as string;
  const models = await s.client.models.list();
  expect(models.data.map((m) => m.id)).toContain(model);
  const reply = await s.client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 4,
  });
  expect(reply.model).toBe(model);
}, 300_000);
