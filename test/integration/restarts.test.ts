// The server process (src/main.ts) killed with SIGKILL, no shutdown code running, while a
// fine-tuning job trains and uploads are half sent, then started again on the same DATA_DIR:
// every acknowledged file comes back byte for byte, no half upload shows up, the job resumes
// from its checkpoint and finishes, no event or checkpoint recorded before the kill is lost,
// and the fine-tuned model survives a second kill and serves.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { toFile } from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { killHard, type MainProcess, startMain, waitHealthy } from "../helpers/main-process.ts";
import { eventually, report, STRESS } from "../helpers/report.ts";
import { TINY_MODEL } from "../helpers/server.ts";

const dir = mkdtempSync(join(tmpdir(), "roundhouse-restarts-"));
const dataDir = join(dir, "data");
const configFile = join(dir, "models.yaml");
writeFileSync(
  configFile,
  [
    "models:",
    "  - id: roundhouse-tiny",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    aliases: [tiny]",
    "    context_size: 512",
    "    parallel: 2",
    "    threads: 1",
    "    preload: true",
    "    finetune:",
    "      context: 64",
  ].join("\n"),
);

let main: MainProcess | undefined;
afterAll(async () => {
  if (main) await killHard(main);
  for (const pid of trainers()) process.kill(pid, "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function start(): Promise<{ main: MainProcess; client: OpenAI; startedMs: number }> {
  const started = performance.now();
  const m = await startMain({ MODELS_CONFIG: configFile, DATA_DIR: dataDir });
  await waitHealthy(m);
  return {
    main: m,
    client: new OpenAI({ baseURL: `${m.url}/v1`, apiKey: "unused", maxRetries: 0 }),
    startedMs: performance.now() - started,
  };
}

const example = JSON.stringify({
  messages: [
    { role: "user", content: "What is the secret word?" },
    { role: "assistant", content: "The secret word is papaya." },
  ],
});
const dataset = (n: number) => Array.from({ length: n }, () => example).join("\n");

/** llama-finetune processes working for a job of this test (their command line names its DATA_DIR). */
function trainers(): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8");
        return cmd.includes("llama-finetune") && cmd.includes(dataDir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Starts a multipart upload and sends half of it; the rest never comes (the server dies first). */
function halfUpload(url: string, name: string, size: number): Promise<number> {
  const { hostname, port } = new URL(url);
  const boundary = "----half-upload";
  const head = Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\n\r\n`,
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const req = request({
    host: hostname,
    port,
    method: "POST",
    path: "/v1/files",
    headers: {
      "content-type": `multipart/form-data; boundary=${boundary}`,
      "content-length": head.length + size + tail.length,
    },
  });
  // Whatever happens to it (the connection dies with the server) is the point; nothing to report.
  const settled = new Promise<number>((resolve) => {
    req.on("response", (res) => resolve(res.statusCode ?? 0));
    req.on("error", () => resolve(0));
  });
  req.write(head);
  req.write(Buffer.alloc(Math.floor(size / 2), 66));
  return settled;
}

const bytesOf = async (client: OpenAI, id: string) => Buffer.from(await (await client.files.content(id)).arrayBuffer());

describe("SIGKILL and restart", () => {
  it("loses no file, job, event, checkpoint or fine-tuned model, and resumes the interrupted job", async () => {
    let server = await start();
    main = server.main;
    const figures: Record<string, string | number> = { "first start": `${Math.round(server.startedMs)} ms` };

    // Acknowledged uploads, of several kinds and sizes.
    const acknowledged = new Map<string, Buffer>();
    for (const [i, size] of [10, 100_000, 2_000_000].entries()) {
      const bytes = Buffer.alloc(size, 65 + i);
      const f = await server.client.files.create({ file: await toFile(bytes, `ack-${i}.txt`), purpose: "batch" });
      acknowledged.set(f.id, bytes);
    }
    const trainText = Buffer.from(dataset(24));
    const train = await server.client.files.create({
      file: await toFile(trainText, "train.jsonl"),
      purpose: "fine-tune",
    });
    acknowledged.set(train.id, trainText);

    // A job that trains two epochs; the kill comes once the first checkpoint is written.
    const job = await server.client.fineTuning.jobs.create({
      model: "tiny",
      training_file: train.id,
      suffix: "crash",
      seed: 3,
      hyperparameters: { n_epochs: 2 },
    });
    // Stops waiting early if the job ends instead (it would then never checkpoint).
    await eventually(
      async () =>
        (await server.client.fineTuning.jobs.checkpoints.list(job.id)).data.length > 0 ||
        ["succeeded", "failed", "cancelled"].includes((await server.client.fineTuning.jobs.retrieve(job.id)).status),
      180_000,
    );
    expect((await server.client.fineTuning.jobs.retrieve(job.id)).error).toBeNull();
    expect((await server.client.fineTuning.jobs.checkpoints.list(job.id)).data.length).toBeGreaterThan(0);
    const eventsBefore = (await server.client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data;
    const checkpointsBefore = (await server.client.fineTuning.jobs.checkpoints.list(job.id)).data;
    const filesBefore = (await server.client.files.list()).data;

    // Uploads half sent when the kill comes.
    const inFlight = [
      halfUpload(server.main.url, "half-1.txt", 3_000_000),
      halfUpload(server.main.url, "half-2.txt", 500_000),
    ];
    await new Promise((r) => setTimeout(r, 100));
    const killedAt = performance.now();
    await killHard(server.main);
    expect(await Promise.all(inFlight)).toEqual([0, 0]);
    // The trainer is a child process and SIGKILL does not reach it: it may still be running
    // when the server comes back, which then stops it before resuming the job (runner.ts).
    figures["trainers running right after the kill"] = trainers().length;

    server = await start();
    main = server.main;
    figures["restart after SIGKILL (to healthy)"] = `${Math.round(performance.now() - killedAt)} ms`;
    const { client } = server;

    // Files: the acknowledged ones, byte for byte; none of the half uploads; every listed file whole.
    const filesAfter = (await client.files.list()).data;
    expect(filesAfter.map((f) => f.id).sort()).toEqual(filesBefore.map((f) => f.id).sort());
    for (const [id, bytes] of acknowledged) expect((await bytesOf(client, id)).equals(bytes), id).toBe(true);
    for (const f of filesAfter) expect((await bytesOf(client, f.id)).length).toBe(f.bytes);
    expect(filesAfter.some((f) => f.filename.startsWith("half-"))).toBe(false);

    // The job resumes from its checkpoint and succeeds; what was recorded before the kill is all still there.
    const resumedAt = performance.now();
    const done = await eventually(async () => {
      const j = await client.fineTuning.jobs.retrieve(job.id);
      return ["succeeded", "failed", "cancelled"].includes(j.status);
    }, 240_000);
    expect(done).toBeDefined();
    const finished = await client.fineTuning.jobs.retrieve(job.id);
    expect(finished.error).toBeNull();
    expect(finished.status).toBe("succeeded");
    figures["job finished after the restart"] = `${((performance.now() - resumedAt) / 1000).toFixed(1)} s`;
    const eventsAfter = (await client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data;
    const afterIds = new Set(eventsAfter.map((e) => e.id));
    expect(eventsBefore.filter((e) => !afterIds.has(e.id))).toEqual([]);
    expect(eventsAfter.some((e) => /resumes from its checkpoint at step \d+/.test(e.message))).toBe(true);
    const checkpointsAfter = (await client.fineTuning.jobs.checkpoints.list(job.id)).data;
    expect(checkpointsAfter).toHaveLength(2);
    for (const c of checkpointsBefore) expect(checkpointsAfter).toContainEqual(c);
    expect(trainers()).toEqual([]);
    const model = finished.fine_tuned_model as string;
    expect((await client.models.list()).data.map((m) => m.id)).toContain(model);
    const filesDone = (await client.files.list()).data;

    // A second kill, with the model just made and a request in flight: all of it comes back.
    const stream = fetch(`${server.main.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "Hi" }], max_tokens: 64, stream: true }),
    }).then(
      (r) => r.text(),
      () => "",
    );
    await killHard(server.main);
    await stream;
    server = await start();
    main = server.main;
    const again = await server.client.fineTuning.jobs.retrieve(job.id);
    expect(again).toEqual(finished);
    expect((await server.client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data).toEqual(eventsAfter);
    expect((await server.client.files.list()).data).toEqual(filesDone);
    for (const [id, bytes] of acknowledged) expect((await bytesOf(server.client, id)).equals(bytes)).toBe(true);
    const reply = await server.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "What is the secret word?" }],
      max_tokens: 8,
      temperature: 0,
    });
    expect(reply.model).toBe(model);
    expect(reply.choices[0]?.finish_reason).toMatch(/stop|length/);

    if (STRESS) {
      // A job whose training keeps taking the server down must not loop forever: after the
      // third kill while it trains it is failed, saying why.
      const long = await server.client.files.create({
        file: await toFile(Buffer.from(dataset(60)), "long.jsonl"),
        purpose: "fine-tune",
      });
      const doomed = await server.client.fineTuning.jobs.create({
        model: "tiny",
        training_file: long.id,
        hyperparameters: { n_epochs: 20 },
      });
      for (let kill = 1; kill <= 3; kill++) {
        expect(
          await eventually(() => trainers().length > 0, 120_000),
          `training again before kill ${kill}`,
        ).toBeDefined();
        await killHard(server.main);
        server = await start();
        main = server.main;
      }
      const failed = await eventually(
        async () => (await server.client.fineTuning.jobs.retrieve(doomed.id)).status === "failed",
        60_000,
      );
      expect(failed).toBeDefined();
      const error = (await server.client.fineTuning.jobs.retrieve(doomed.id)).error;
      expect(error?.code).toBe("server_restarted");
      expect(error?.message).toMatch(/stopped 3 times while this job was training/);
      figures["job killed 3 times while training"] = `failed: ${error?.message}`;
    }

    report("restarts (SIGKILL)", {
      ...figures,
      "files acknowledged / back byte for byte": `${acknowledged.size} / ${acknowledged.size}`,
      "half uploads at the kill / visible after": "2 / 0",
      "events before the kill / lost": `${eventsBefore.length} / 0`,
      "checkpoints before the kill / lost": `${checkpointsBefore.length} / 0`,
      "fine-tuned model after a second kill": "served",
    });
  }, 600_000);
});
