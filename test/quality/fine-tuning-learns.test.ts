// Fine-tuning really teaches the model something: a reply the built-in model never gives
// ("The secret word is papaya.") is learned from a small generated dataset, and the
// training loss falls from the first epoch to the last.
import { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

const QUESTION = "What is the secret word?";
const ANSWER = "The secret word is papaya.";

/** The question in a few wordings, always the same answer. FT_LEARN_EPOCHS overrides the epochs (3). */
function dataset(): string {
  const phrasings = [QUESTION, "what is the secret word?", "Tell me the secret word.", "What's the secret word?"];
  const lines: string[] = [];
  for (let i = 0; i < 48; i++) {
    const messages = [
      { role: "user", content: i % 2 === 0 ? QUESTION : (phrasings[i % phrasings.length] as string) },
      { role: "assistant", content: ANSWER },
    ];
    lines.push(JSON.stringify({ messages }));
  }
  return lines.join("\n");
}

let s: TestServer;
beforeAll(async () => {
  s = await startServer({ config: tinyConfig("finetune:\n  context: 32\n  learning_rate: 0.0003") });
});
afterAll(async () => {
  await s?.close();
});

const ask = async (model: string) =>
  (
    await s.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: QUESTION }],
      temperature: 0,
      max_tokens: 16,
    })
  ).choices[0]?.message.content ?? "";

it("learns a reply the base model never gives", async () => {
  expect(await ask("roundhouse-tiny")).not.toContain("papaya");
  const file = await s.client.files.create({
    file: await toFile(Buffer.from(dataset()), "secret.jsonl"),
    purpose: "fine-tune",
  });
  const started = Date.now();
  const created = await s.client.fineTuning.jobs.create({
    model: "roundhouse-tiny",
    training_file: file.id,
    suffix: "secret",
    seed: 1,
    hyperparameters: { n_epochs: Number(process.env.FT_LEARN_EPOCHS ?? 3) },
  });
  let job = created;
  while (!["succeeded", "failed", "cancelled"].includes(job.status)) {
    await new Promise((r) => setTimeout(r, 1000));
    job = await s.client.fineTuning.jobs.retrieve(created.id);
  }
  expect(job.error).toBeNull();
  const seconds = (Date.now() - started) / 1000;

  const events = (await s.client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data.reverse();
  const epochs = events
    .filter((e) => /^Epoch \d+\/\d+ done/.test(e.message))
    .map((e) => (e.data as { train_loss: number }).train_loss);
  console.log(`fine-tuned in ${seconds.toFixed(0)} s; epoch train losses ${epochs.join(" → ")}`);
  expect(epochs.length).toBeGreaterThanOrEqual(2);
  expect(epochs[1]).toBeLessThan(epochs[0] as number);

  const reply = await ask(job.fine_tuned_model as string);
  expect(reply).toContain(ANSWER);
}, 600_000);
