// Fine-tuning jobs that cannot succeed say why: a trainer that aborts or is killed fails its
// job with the trainer's own words and how it ended (never "exit null" and nothing after the
// colon, never an absolute path); a model whose training cannot fit in memory is refused
// when the job is created, with the numbers; every job announces what it expects to cost.
// The trainer here is a script standing in for llama-finetune (ROUNDHOUSE_LLAMA_BIN); the
// quantizer, server, model and HTTP are real.
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { type APIError, toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { toolPath } from "../../src/engine/llama-tools.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

// The end of what the unpatched llama-finetune printed on the 12-layer model (another build path).
const FAKE_TRAINER = `#!/bin/sh
case "$FAKE_TRAINER_MODE" in
  assert)
    echo "0.00.600.000 I epoch 0 lr=1e-05" >&2
    echo "/home/someone/.cache/roundhouse/llama.cpp/src/ggml/src/ggml.c:7291: GGML_ASSERT(cgraph->n_nodes < cgraph->size) failed" >&2
    printf '30\t../sysdeps/unix/sysv/linux/wait4.c: No such file or directory.\n' >&2
    kill -ABRT $$ ;;
  killed)
    echo "0.00.600.000 I epoch 0 lr=1e-05" >&2
    kill -KILL $$ ;;
  silent)
    exit 1 ;;
esac
exit 0
`;

const example = JSON.stringify({
  messages: [
    { role: "user", content: "What is the secret word?" },
    { role: "assistant", content: "The secret word is papaya." },
  ],
});
const dataset = Array.from({ length: 24 }, () => example).join("\n");

let bin: string;
let previousBin: string | undefined;
let s: TestServer;
let small: TestServer;
beforeAll(async () => {
  const quantizer = await toolPath("llama-quantize");
  bin = mkdtempSync(join(tmpdir(), "roundhouse-fake-trainer-"));
  symlinkSync(quantizer, join(bin, "llama-quantize"));
  writeFileSync(join(bin, "llama-finetune"), FAKE_TRAINER);
  chmodSync(join(bin, "llama-finetune"), 0o755);
  previousBin = process.env.ROUNDHOUSE_LLAMA_BIN;
  process.env.ROUNDHOUSE_LLAMA_BIN = bin;
  s = await startServer({ config: tinyConfig("finetune:\n  context: 64") });
  // The same model on a "machine" with 32 MiB for the trainer.
  small = await startServer({ config: tinyConfig("finetune:\n  context: 64"), trainerMemoryBytes: 32 * 2 ** 20 });
});
afterAll(async () => {
  await s?.close();
  await small?.close();
  if (previousBin === undefined) delete process.env.ROUNDHOUSE_LLAMA_BIN;
  else process.env.ROUNDHOUSE_LLAMA_BIN = previousBin;
  delete process.env.FAKE_TRAINER_MODE;
  rmSync(bin, { recursive: true, force: true });
});

async function failedJob(mode: string): Promise<OpenAI.FineTuning.FineTuningJob> {
  process.env.FAKE_TRAINER_MODE = mode;
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(dataset), "t.jsonl"),
    purpose: "fine-tune",
  });
  const created = await s.client.fineTuning.jobs.create({
    model: "roundhouse-tiny",
    training_file: file.id,
    hyperparameters: { n_epochs: 1 },
  });
  const until = Date.now() + 60_000;
  for (;;) {
    const job = await s.client.fineTuning.jobs.retrieve(created.id);
    if (["succeeded", "failed", "cancelled"].includes(job.status)) return job;
    if (Date.now() > until) throw new Error(`job stuck in ${job.status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("a failed trainer explains itself", () => {
  it("an assertion: the trainer's words and the signal by name, no paths", async () => {
    const job = await failedJob("assert");
    expect(job.status).toBe("failed");
    expect(job.error?.code).toBe("training_failed");
    expect(job.error?.message).toBe(
      "Training failed: llama-finetune aborted (SIGABRT): ggml.c:7291: GGML_ASSERT(cgraph->n_nodes < cgraph->size) failed",
    );
  });

  it("a kill: says so, and names the likely cause", async () => {
    const job = await failedJob("killed");
    expect(job.status).toBe("failed");
    expect(job.error?.message).toMatch(/^Training failed: llama-finetune was killed \(SIGKILL\).*out-of-memory/);
    expect(job.error?.message).not.toContain("null");
  });

  it("silence: the exit code and that it said nothing", async () => {
    const job = await failedJob("silent");
    expect(job.error?.message).toBe("Training failed: llama-finetune exited with code 1: it printed nothing on stderr");
  });

  it("every job first says what it expects to cost", async () => {
    const job = await failedJob("silent");
    const events = (await s.client.fineTuning.jobs.listEvents(job.id, { limit: 50 })).data;
    const estimate = events.find((e) => e.message.startsWith("Expected ~"));
    expect(estimate?.message).toMatch(
      /^Expected ~\d+ (s|min) per epoch \(\d+ windows of 256 tokens at ~\d+ tokens\/s on \d+ threads?\); peak memory about \d+ MiB \(weights /,
    );
    const data = estimate?.data as { estimated_seconds_per_epoch: number; estimated_peak_memory_bytes: number };
    expect(data.estimated_seconds_per_epoch).toBeGreaterThanOrEqual(0);
    expect(data.estimated_peak_memory_bytes).toBeGreaterThan(32 * 2 ** 20);
  });
});

describe("what cannot fit is refused before it runs", () => {
  it("400 at creation with the estimate's figures, no job created", async () => {
    const file = await small.client.files.create({
      file: await toFile(Buffer.from(dataset), "t.jsonl"),
      purpose: "fine-tune",
    });
    const err = (await small.client.fineTuning.jobs
      .create({ model: "roundhouse-tiny", training_file: file.id })
      .catch((e: unknown) => e)) as APIError;
    expect(err.status).toBe(400);
    expect(err.code).toBe("insufficient_memory");
    expect(err.param).toBe("model");
    expect(err.message).toMatch(
      /needs about \d+ MiB \(weights \d+ MiB, gradients .*optimizer state .*activations .*, runtime \d+ MiB\), and the machine has 32 MiB/,
    );
    expect((await small.client.fineTuning.jobs.list()).data).toHaveLength(0);
  });
});
