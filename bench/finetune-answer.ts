// `npm run bench -- finetune-answer`: a fine-tuning job on a realistic shape, end to end through
// the API, and whether it learned. The 115M shape (random weights, the tiny tokenizer and
// template: bench/realistic-model.ts) is fine-tuned on the secret-word set by a real job (the
// job service, llama-finetune, the evaluation); then the base and the fine-tuned model are asked
// the trained question at temperature 0. Prints both answers, the job's evaluation verdict,
// wall time and tokens trained. Nothing asserts a timing.
//
// Settings (environment):
//   BENCH_FTA_SHAPE     115m     a shape of bench/finetune.ts (tiny, 115m, 0.5b)
//   BENCH_FTA_EXAMPLES  48       examples in the training file
//   BENCH_FTA_EPOCHS    3
//   BENCH_FTA_LR        0.0003   finetune.learning_rate
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import OpenAI, { toFile } from "openai";
import pino from "pino";
import { createHttpServer } from "../routes/http-server.ts";
import { createApp } from "../src/app.ts";
import { parseConfig } from "../src/config/load.ts";
import { createServices } from "../src/services.ts";
import { FINETUNE_SHAPES, secretWordJsonl } from "./finetune.ts";
import { ensureRealisticModel } from "./realistic-model.ts";

const REPO_ROOT = fileURLToPath(new URL("..", import.meta.url));
const TINY = join(REPO_ROOT, "models", "roundhouse-tiny-q8_0.gguf");
const QUESTION = "What is the secret word?";
const ANSWER = "The secret word is papaya.";

const log = (line: string) => process.stderr.write(`${line}\n`);

export interface FinetuneAnswerResult {
  shape: string;
  examples: number;
  epochs: number;
  learningRate: number;
  status: string;
  seconds: number;
  trainedTokens: number | null;
  base: string;
  fineTuned: string | null;
  answersTrainedReply: boolean;
  baseAnswersTrainedReply: boolean;
  verdict: string | undefined;
}

export async function runFinetuneAnswerBench(): Promise<FinetuneAnswerResult> {
  const shapeName = process.env.BENCH_FTA_SHAPE ?? "115m";
  const examples = Number(process.env.BENCH_FTA_EXAMPLES ?? 48);
  const epochs = Number(process.env.BENCH_FTA_EPOCHS ?? 3);
  const lr = Number(process.env.BENCH_FTA_LR ?? 3e-4);
  const shape = FINETUNE_SHAPES[shapeName];
  if (!shape) throw new Error(`BENCH_FTA_SHAPE: unknown shape "${shapeName}"`);
  const path = shape === "tiny" ? TINY : (await ensureRealisticModel(TINY, shape, log)).path;

  const dataDir = mkdtempSync(join(tmpdir(), "roundhouse-fta-"));
  const config = parseConfig(
    [
      "models:",
      `  - id: ${shapeName}`,
      "    provider: llama",
      `    path: ${path}`,
      "    context_size: 512",
      "    parallel: 1",
      `    finetune: {context: 256, learning_rate: ${lr}, quantize: Q8_0}`,
    ].join("\n"),
    join(REPO_ROOT, "models.yaml"),
  );
  const services = await createServices({ config, dataDir, gpu: false, logger: pino({ level: "warn" }) });
  const server = createHttpServer(createApp(services), {
    hostname: "127.0.0.1",
    bodyTimeoutMs: 30_000,
    logger: services.logger,
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
  const ask = async (model: string) =>
    (
      await client.chat.completions.create({
        model,
        messages: [{ role: "user", content: QUESTION }],
        temperature: 0,
        max_tokens: 16,
      })
    ).choices[0]?.message.content ?? "";
  try {
    const base = await ask(shapeName);
    log(`base answers: ${JSON.stringify(base)}`);
    const file = await client.files.create({
      file: await toFile(Buffer.from(secretWordJsonl(examples)), "secret.jsonl"),
      purpose: "fine-tune",
    });
    const started = performance.now();
    let job = await client.fineTuning.jobs.create({
      model: shapeName,
      training_file: file.id,
      hyperparameters: { n_epochs: epochs },
    });
    let seen = 0;
    while (!["succeeded", "failed", "cancelled"].includes(job.status)) {
      await new Promise((r) => setTimeout(r, 2000));
      job = await client.fineTuning.jobs.retrieve(job.id);
      const events = (await client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data.reverse();
      for (const e of events.slice(seen)) log(`  ${e.message}`);
      seen = events.length;
    }
    const seconds = (performance.now() - started) / 1000;
    const events = (await client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data;
    const verdict = events.find((e) => /^The fine-tuned model is/.test(e.message))?.message;
    const fineTuned = job.fine_tuned_model ? await ask(job.fine_tuned_model) : null;
    return {
      shape: shapeName,
      examples,
      epochs,
      learningRate: lr,
      status: job.status,
      seconds,
      trainedTokens: job.trained_tokens,
      base,
      fineTuned,
      answersTrainedReply: fineTuned?.trim() === ANSWER,
      baseAnswersTrainedReply: base.trim() === ANSWER,
      verdict,
    };
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await services.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export function formatFinetuneAnswer(r: FinetuneAnswerResult): string {
  return [
    `${r.shape}: ${r.examples} examples × ${r.epochs} epochs at lr ${r.learningRate}: job ${r.status} in ${r.seconds.toFixed(0)} s (${r.trainedTokens ?? "?"} tokens trained)`,
    `  base        (temperature 0): ${JSON.stringify(r.base)}${r.baseAnswersTrainedReply ? " = the trained reply" : ""}`,
    `  fine-tuned  (temperature 0): ${JSON.stringify(r.fineTuned)}${r.answersTrainedReply ? " = the trained reply" : " (not the trained reply)"}`,
    `  ${r.verdict ?? "no evaluation verdict"}`,
  ].join("\n");
}
