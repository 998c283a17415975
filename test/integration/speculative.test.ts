// Speculative decoding (issue #25, item 3), by prompt lookup and by a draft model: guesses checked
// in one batch change how fast a reply comes, never what it says. The tiny model's answers echo
// their questions ("The capital of France is …"), so lookups are made and some hold; its Q4_0
// quantization drafts for it (the same weights, rounded: a third of its drafted tokens hold).

import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { REPO, startServer, type TestServer, tinyModelEntry } from "../helpers/server.ts";

const DRAFT = join(REPO, "models", "roundhouse-tiny-q4_0.gguf");

const model = (id: string, extra: string[] = []) => tinyModelEntry(id, { parallel: 2, extra });

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: [
      "models:",
      model("plain"),
      model("lookup", ["speculative: {method: prompt_lookup, max_tokens: 3}"]),
      model("drafted", [`speculative: {method: draft, model: ${DRAFT}, max_tokens: 4}`]),
    ].join("\n"),
  });
});
afterAll(async () => {
  await s?.close();
});

const QUESTIONS = [
  "What is the capital of France?",
  "What is the opposite of hot?",
  "What colour is the sky?",
  "What sound does a dog make?",
];

const guessed = (id: string, what: "validated" | "refuted") =>
  (s.services.pool.get(id)?.sequences ?? []).reduce((n, q) => n + q.tokenPredictions[what], 0);

for (const id of ["lookup", "drafted"]) {
  it(`${id}: answers exactly as without it, at temperature 0, streamed or not, having made guesses`, async () => {
    for (const question of QUESTIONS) {
      const ask = (model: string) =>
        s.client.chat.completions.create({
          model,
          messages: [{ role: "user", content: question }],
          max_tokens: 24,
          temperature: 0,
        });
      const [plain, guessing] = [await ask("plain"), await ask(id)];
      expect(guessing.choices[0]?.message.content).toBe(plain.choices[0]?.message.content);
      expect(guessing.usage?.completion_tokens).toBe(plain.usage?.completion_tokens);

      const stream = await s.client.chat.completions.create({
        model: id,
        messages: [{ role: "user", content: question }],
        max_tokens: 24,
        temperature: 0,
        stream: true,
      });
      let text = "";
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
      expect(text).toBe(plain.choices[0]?.message.content);
    }
    expect(guessed("plain", "validated") + guessed("plain", "refuted")).toBe(0);
    expect(guessed(id, "validated")).toBeGreaterThan(0);
  });
}

it("drafted: the draft model is loaded and unloaded with the model", async () => {
  const loaded = s.services.pool.get("drafted");
  const draft = loaded?.draft;
  expect(draft?.model.filename).toBe("roundhouse-tiny-q4_0.gguf");
  await s.services.pool.unload("drafted");
  expect(draft?.disposed).toBe(true);
  expect(draft?.model.disposed).toBe(true);
});
