// Fine-tuning jobs that cannot succeed say why: a trainer that aborts or is killed fails its
// job with the trainer's own words and how it ended (never "exit null" and nothing after the
// colon, never an absolute path).
// The trainer here is a script standing in for llama-finetune (ROUNDHOUSE_LLAMA_BIN); the
// quantizer, server, model and HTTP are real.
import { chmodSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type OpenAI from "openai";
import { toFile } from "openai";
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
beforeAll(async () => {
  const quantizer = await toolPath("llama-quantize");
  bin = mkdtempSync(join(tmpdir(), "roundhouse-fake-trainer-"));
  symlinkSync(quantizer, join(bin, "llama-quantize"));
  writeFileSync(join(bin, "llama-finetune"), FAKE_TRAINER);
  chmodSync(join(bin, "llama-finetune"), 0o755);
  previousBin = process.env.ROUNDHOUSE_LLAMA_BIN;
  process.env.ROUNDHOUSE_LLAMA_BIN = bin;
  s = await startServer({ config: tinyConfig("finetune:\n  context: 64") });
});
afterAll(async () => {
  await s?.close();
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
});
