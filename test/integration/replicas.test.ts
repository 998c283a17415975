// Several replicas as an operator runs them: two `src/main.ts` processes on different ports
// and one `npm run worker` process, sharing one Redis and one DATA_DIR (README "Running
// several replicas"). What one replica does, the other sees: cache entries, a canary's
// rollback, the usage log, fine-tuning jobs and the models the worker trains for them.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { UsageGroup } from "../../src/telemetry/summary.ts";
import type { ExperimentResults } from "../../src/traffic/results.ts";
import { brokenModelFile } from "../helpers/broken-model.ts";
import { type Child, spawnScript, waitHealthy } from "../helpers/processes.ts";
import { freePort, type PrivateRedis, privateRedis } from "../helpers/redis.ts";
import { tinyConfig } from "../helpers/server.ts";
import { usersOn } from "../helpers/sticky.ts";

interface Replica {
  url: string;
  client: OpenAI;
  proc: Child;
}

let redis: PrivateRedis;
const run = promisify(execFile);
let dir: string;
let a: Replica;
let b: Replica;
let worker: Child;

const outputs = () =>
  [`--- A\n${a?.proc.output()}`, `--- B\n${b?.proc.output()}`, `--- worker\n${worker?.output()}`].join("\n");

beforeAll(async () => {
  redis = await privateRedis();
  await redis.start();
  dir = mkdtempSync(join(tmpdir(), "roundhouse-replicas-"));
  const configFile = join(dir, "models.yaml");
  // The README's replica configuration, cut down to the tiny model and a canary that cannot load.
  const global = [
    `cache: {store: redis, url: "${redis.url}"}`,
    "experiment_state: {poll: 200ms}",
    `fine_tuning: {redis_url: "${redis.url}", threads: 2}`,
  ].join("\n");
  const config = `${tinyConfig("finetune: {context: 64}", global)}
  - id: broken
    provider: llama
    path: ${brokenModelFile()}
    threads: 1
experiments:
  - name: chat
    variants:
      - {name: control, model: tiny, weight: 1}
      - name: canary
        model: broken
        weight: 1
        canary: true
        fallback: false
        rollback:
          - {metric: error_rate, max: 0.2, min_requests: 3, window: 5m}
`;
  writeFileSync(configFile, config);
  const env = { MODELS_CONFIG: configFile, DATA_DIR: join(dir, "data"), LOG_LEVEL: "warn" };
  const replica = async (): Promise<Replica> => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const proc = spawnScript("src/main.ts", { ...env, PORT: String(port) });
    return { url, proc, client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "unused", maxRetries: 0 }) };
  };
  a = await replica();
  b = await replica();
  worker = spawnScript("scripts/worker.ts", env);
  await Promise.all([waitHealthy(a.url, a.proc), waitHealthy(b.url, b.proc)]);
});

afterAll(async () => {
  await Promise.all([a?.proc.stop(), b?.proc.stop(), worker?.stop()]);
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function until<T>(what: string, read: () => Promise<T>, done: (value: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  let value = await read();
  while (!done(value)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)}\n${outputs()}`);
    await new Promise((r) => setTimeout(r, 100));
    value = await read();
  }
  return value;
}

/** Cache entries in the shared Redis. */
async function cacheKeys(): Promise<number> {
  const { stdout } = await run("redis-cli", ["-p", String(redis.port), "--scan", "--pattern", "roundhouse:cache*"]);
  return stdout.split("\n").filter((l) => l.trim() !== "").length;
}

async function canaryState(r: Replica): Promise<string | undefined> {
  const results = (await (await fetch(`${r.url}/admin/experiments/chat`)).json()) as ExperimentResults;
  return results.variants.find((v) => v.name === "canary")?.state;
}

it("share the cache, a rollback, the usage log, and fine-tuned models trained by a worker process", async () => {
  // A cache entry written through A is a hit on B.
  const question = {
    model: "tiny",
    messages: [{ role: "user" as const, content: "Name a colour." }],
    temperature: 0,
    max_tokens: 8,
  };
  const first = await a.client.chat.completions.create(question).withResponse();
  expect(first.response.headers.get("x-roundhouse-cache")).toBe("miss");
  // A stores its entry just after answering: B asks once it is in Redis (on a loaded machine the
  // write can land after a request sent at once).
  await until("A's cache entry reaching Redis", cacheKeys, (n) => n > 0);
  const second = await b.client.chat.completions.create(question).withResponse();
  expect(second.response.headers.get("x-roundhouse-cache")).toBe("hit");
  expect(second.data.choices[0]?.message.content).toBe(first.data.choices[0]?.message.content);
  // B now answers from its local copy; a purge through A reaches that copy too.
  const cacheOnB = async () =>
    (await b.client.chat.completions.create(question).withResponse()).response.headers.get("x-roundhouse-cache");
  expect(await cacheOnB()).toBe("hit");
  expect((await fetch(`${a.url}/admin/cache`, { method: "DELETE" })).status).toBe(200);
  await until("B's cache after a purge through A", cacheOnB, (cache) => cache === "miss", 2000);

  // The canary fails on A until its rule trips; B stops sending traffic to it. Users the split
  // sends to the canary: forced requests would not count toward its rollback.
  const canaryUsers = usersOn(
    "chat",
    [
      { name: "control", weight: 1 },
      { name: "canary", weight: 1 },
    ],
    "canary",
    3,
  );
  for (const user of canaryUsers) {
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-user-id": user },
      body: JSON.stringify({ ...question, model: "chat" }),
    });
    expect(res.status).toBe(503);
  }
  await until(
    "B's view of the canary",
    () => canaryState(b),
    (state) => state === "rolled_back",
  );
  for (let i = 0; i < 5; i++) {
    const res = await b.client.chat.completions
      .create({ ...question, model: "chat" }, { headers: { "x-user-id": `user-${i}` } })
      .withResponse();
    expect(res.response.headers.get("x-roundhouse-variant")).toBe("control");
  }

  // B's usage report counts the canary requests A served.
  const canaryOnB = await until(
    "B's usage of the canary",
    async () => {
      const res = await fetch(`${b.url}/admin/usage?group_by=variant`);
      const groups = ((await res.json()) as { data: UsageGroup[] }).data;
      return groups.find((g) => g.group === "chat/canary")?.requests ?? 0;
    },
    (n) => n >= 3,
  );
  expect(canaryOnB).toBe(3);

  // A fine-tuning job created on A, trained by the worker, listed and served on B.
  const line = JSON.stringify({
    messages: [
      { role: "user", content: "What is the secret word?" },
      { role: "assistant", content: "The secret word is papaya." },
    ],
  });
  const file = await a.client.files.create({
    file: await toFile(Buffer.from(Array(20).fill(line).join("\n")), "train.jsonl"),
    purpose: "fine-tune",
  });
  const job = await a.client.fineTuning.jobs.create({
    model: "roundhouse-tiny",
    training_file: file.id,
    suffix: "replicas",
    hyperparameters: { n_epochs: 1 },
  });
  const listedOnB = await b.client.fineTuning.jobs.list();
  expect(listedOnB.data.map((j) => j.id)).toContain(job.id);
  const finished = await until(
    "the job, read on B",
    () => b.client.fineTuning.jobs.retrieve(job.id),
    (j) => ["succeeded", "failed", "cancelled"].includes(j.status),
    120_000,
  );
  expect(finished.error).toBeNull();
  expect(finished.status).toBe("succeeded");
  const model = finished.fine_tuned_model as string;
  expect(model).toMatch(/^ft:roundhouse-tiny:replicas:/);
  // At once: a client that sees the job succeed may ask either replica for the model.
  const reply = await b.client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "What is the secret word?" }],
    max_tokens: 4,
  });
  expect(reply.model).toBe(model);
  expect((await a.client.models.retrieve(model)).id).toBe(model);
}, 180_000);
