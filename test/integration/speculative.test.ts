// Speculative decoding by prompt lookup (issue #25, item 3): guesses checked in one batch change
// how fast a reply comes, never what it says. The tiny model's answers echo their questions
// ("The capital of France is …"), so guesses are made and some hold.
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServer, type TestServer, tinyModelEntry } from "../helpers/server.ts";

const model = (id: string, extra: string[] = []) => tinyModelEntry(id, { parallel: 2, extra });

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: ["models:", model("plain"), model("lookup", ["speculative: {method: prompt_lookup, max_tokens: 3}"])].join(
      "\n",
    ),
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

it("answers exactly as without it, at temperature 0, streamed or not, having made guesses", async () => {
  for (const question of QUESTIONS) {
    const ask = (id: string) =>
      s.client.chat.completions.create({
        model: id,
        messages: [{ role: "user", content: question }],
        max_tokens: 24,
        temperature: 0,
      });
    const [plain, lookup] = [await ask("plain"), await ask("lookup")];
    expect(lookup.choices[0]?.message.content).toBe(plain.choices[0]?.message.content);
    expect(lookup.usage?.completion_tokens).toBe(plain.usage?.completion_tokens);

    const stream = await s.client.chat.completions.create({
      model: "lookup",
      messages: [{ role: "user", content: question }],
      max_tokens: 24,
      temperature: 0,
      stream: true,
    });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text).toBe(plain.choices[0]?.message.content);
  }
  const guessed = (id: string) =>
    (s.services.pool.get(id)?.sequences ?? []).reduce(
      (n, q) => n + q.tokenPredictions.validated + q.tokenPredictions.refuted,
      0,
    );
  expect(guessed("plain")).toBe(0);
  expect(guessed("lookup")).toBeGreaterThan(0);
});
