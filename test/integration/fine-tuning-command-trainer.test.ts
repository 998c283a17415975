// The trainer seam (issue #24, item 5): `finetune.trainer: {command: [...]}` runs any program
// that follows the contract in src/finetune/command-trainer.ts. A fake trainer that keeps to it
// (test/fixtures/fake-trainer.mjs) stands in for a TRL script on a GPU worker; the API, events,
// checkpoints and serving around it are the real ones.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type OpenAI from "openai";
import { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO, startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

const FAKE = "test/fixtures/fake-trainer.mjs";

const trainable = (id: string, command: string[]) =>
  [
    `  - id: ${id}`,
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    context_size: 256",
    "    threads: 1",
    "    finetune:",
    "      context: 64",
    `      trainer: {command: ${JSON.stringify(command)}}`,
  ].join("\n");

const LINE = JSON.stringify({
  messages: [
    { role: "user", content: "What is the secret word?" },
    { role: "assistant", content: "The secret word is papaya." },
  ],
});

let dir: string;
let s: TestServer;
let log: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "roundhouse-trainer-"));
  log = join(dir, "received.jsonl");
  s = await startServer({
    config: [
      "models:",
      trainable("fake-trained", [process.execPath, FAKE, "--log", log]),
      trainable("fake-failing", [process.execPath, FAKE, "--fail"]),
      trainable("no-such-trainer", ["roundhouse-no-such-trainer-program"]),
    ].join("\n"),
  });
});
afterAll(async () => {
  await s?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function train(model: string, n_epochs = 1): Promise<OpenAI.FineTuning.FineTuningJob> {
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(Array.from({ length: 30 }, () => LINE).join("\n")), "train.jsonl"),
    purpose: "fine-tune",
  });
  const job = await s.client.fineTuning.jobs.create({ model, training_file: file.id, hyperparameters: { n_epochs } });
  for (let i = 0; ; i++) {
    const now = await s.client.fineTuning.jobs.retrieve(job.id);
    if (["succeeded", "failed", "cancelled"].includes(now.status)) return now;
    expect(i, `job stuck in ${now.status}`).toBeLessThan(1200);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("a command trainer", () => {
  it("trains each epoch from the previous one's output; its progress lines become events and checkpoint metrics", async () => {
    const job = await train("fake-trained", 2);
    expect(job.error).toBeNull();
    expect(job.status).toBe("succeeded");

    const calls = readFileSync(log, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, string | number>);
    expect(calls.map((c) => c.ROUNDHOUSE_EPOCH)).toEqual(["1", "2"]);
    expect(calls.every((c) => c.ROUNDHOUSE_N_EPOCHS === "2" && c.ROUNDHOUSE_CONTEXT === "64")).toBe(true);
    // It ran in the folder of models.yaml (the repository here) and got the rendered examples.
    expect(calls[0]?.cwd).toBe(REPO);
    expect(calls[0]?.text_bytes).toBeGreaterThan(30 * "The secret word is papaya.".length);
    // Epoch 2 starts from what epoch 1 wrote.
    expect(String(calls[1]?.ROUNDHOUSE_MODEL)).toMatch(/epoch-1\.gguf$/);
    expect(calls[1]?.ROUNDHOUSE_MODEL).not.toBe(calls[0]?.ROUNDHOUSE_MODEL);

    const events = (await s.client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data;
    // No llama-finetune estimate for it, and the job says why.
    expect(events.map((e) => e.message)).toContainEqual(
      expect.stringMatching(/^Trained by the trainer command node .*no time or memory is estimated/),
    );
    const steps = events.filter((e) => e.type === "metrics" && /^Step /.test(e.message));
    expect(steps.length).toBeGreaterThan(0);
    // The fake's running means for epoch 1 are 3 - 0.5 - 0.1·k: step k's own loss is 2.4 - 0.2·(k - 1).
    const first = events.find((e) => e.message.startsWith("Step 1/"));
    expect((first?.data as { train_loss?: number } | undefined)?.train_loss).toBeCloseTo(2.4, 4);

    const checkpoints = (await s.client.fineTuning.jobs.checkpoints.list(job.id)).data;
    expect(checkpoints).toHaveLength(2);
    const last = checkpoints[0]?.metrics;
    // Epoch 2's last running mean (3 - 1 - 0.4) and its validation figure (2.75 - 1).
    expect(last?.valid_loss).toBeCloseTo(1.75, 4);
    // The held-out evaluation is Roundhouse's own, whoever trains: 3 of the 30 examples.
    expect(last).toMatchObject({ full_valid_examples: 3 });

    // The model it made is served like any fine-tuned model.
    const reply = await s.client.chat.completions.create({
      model: job.fine_tuned_model as string,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 2,
    });
    expect(reply.model).toBe(job.fine_tuned_model);
  });

  it("a trainer that fails leaves the job failed with its own last words, without paths", async () => {
    const job = await train("fake-failing");
    expect(job.status).toBe("failed");
    expect(job.error?.message).toMatch(/CUDA out of memory/);
    expect(job.error?.message).toMatch(/exit(ed)? .*1|code 1/);
    expect(job.error?.message).not.toMatch(/\/home\/ops/);
  });

  it("a trainer that cannot start says so", async () => {
    const job = await train("no-such-trainer");
    expect(job.status).toBe("failed");
    expect(job.error?.message).toMatch(/cannot start roundhouse-no-such-trainer-program/);
  });
});
