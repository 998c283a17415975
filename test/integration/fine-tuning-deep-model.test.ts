// A model as deep as real ones (12 layers) fine-tunes: llama.cpp sized its training graph
// for inference, and from ~8 layers the backward pass overflowed it (GGML_ASSERT(cgraph->n_nodes
// < cgraph->size) in ggml_build_backward_expand); scripts/llama-patches/training-graph-size.patch
// sizes it for forward + backward + optimizer. The graph's node count depends on the layers,
// not their width, so a narrow 12-layer model (n_embd 64) reproduces it in seconds.
import { toFile } from "openai";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ensureRealisticModel } from "../../bench/realistic-model.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

const example = (i: number) =>
  JSON.stringify({
    messages: [
      { role: "user", content: i % 2 === 0 ? "What is the secret word?" : "Tell me the secret word." },
      { role: "assistant", content: "The secret word is papaya." },
    ],
  });

let s: TestServer;
beforeAll(async () => {
  const deep = await ensureRealisticModel(TINY_MODEL, { nEmbd: 64, nLayer: 12, nHead: 2, nFf: 128 });
  s = await startServer({
    config: [
      "models:",
      "  - id: deep",
      "    provider: llama",
      `    path: ${deep.path}`,
      "    context_size: 256",
      "    threads: 1",
      "    finetune:",
      "      context: 64",
      "      learning_rate: 0.0001",
    ].join("\n"),
  });
}, 120_000);
afterAll(async () => {
  await s?.close();
});

it("fine-tunes a 12-layer model, and serves the result", async () => {
  const lines = Array.from({ length: 48 }, (_, i) => example(i)).join("\n");
  const file = await s.client.files.create({ file: await toFile(Buffer.from(lines), "d.jsonl"), purpose: "fine-tune" });
  const created = await s.client.fineTuning.jobs.create({
    model: "deep",
    training_file: file.id,
    hyperparameters: { n_epochs: 1 },
  });
  let job = created;
  const until = Date.now() + 420_000;
  while (!["succeeded", "failed", "cancelled"].includes(job.status) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 500));
    job = await s.client.fineTuning.jobs.retrieve(created.id);
  }
  expect(job.error).toBeNull();
  expect(job.status).toBe("succeeded");
  const reply = await s.client.chat.completions.create({
    model: job.fine_tuned_model as string,
    messages: [{ role: "user", content: "What is the secret word?" }],
    max_tokens: 4,
    temperature: 0,
  });
  expect(reply.choices[0]?.message.role).toBe("assistant");
}, 480_000);
