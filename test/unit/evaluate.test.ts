// Every fine-tuning job's evaluation (and the learning-rate schedule it is trained with): which examples are held out, how the exchanges are cut,
// and how the verdict reads (pure); and the scores themselves on the built-in model, whose
// greedy answer (as the server gives it) must count as an exact match.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Example } from "../../src/finetune/dataset.ts";
import {
  type Evaluation,
  evalCaseOf,
  evaluateModel,
  evaluationCsv,
  improved,
  MAX_EVAL_EXAMPLES,
  pickCases,
  splitForEvaluation,
  verdict,
} from "../../src/finetune/evaluate.ts";
import { modelText } from "../../src/finetune/prepare.ts";
import { epochLearningRate } from "../../src/finetune/runner.ts";
import { startServer, type TestServer, TINY_MODEL, testRuntime } from "../helpers/server.ts";

const ex = (q: string, a: string): Example => ({
  messages: [
    { role: "user", content: q },
    { role: "assistant", content: a },
  ],
});
const many = (n: number) => Array.from({ length: n }, (_, i) => ex(`Question ${i}?`, `Answer ${i}.`));

describe("choosing what to evaluate", () => {
  it("an exchange is everything before the last assistant turn, and that turn", () => {
    const example: Example = {
      messages: [
        { role: "developer", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Bye" },
        { role: "assistant", content: "Goodbye." },
      ],
    };
    expect(evalCaseOf(example)).toEqual({
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: "Bye" },
      ],
      reply: "Goodbye.",
    });
    expect(evalCaseOf({ messages: [{ role: "assistant", content: "Alone." }] })).toBeUndefined();
  });

  it("a validation file is evaluated and the training file trains whole", () => {
    const { train, evaluation } = splitForEvaluation(many(30), many(40));
    expect(train).toHaveLength(30);
    expect(evaluation).toMatchObject({ heldOut: true, source: "validation_file" });
    expect(evaluation.cases).toHaveLength(MAX_EVAL_EXAMPLES);
  });

  it("without one, every tenth training example is held out of training (at most 16)", () => {
    const training = many(50);
    const { train, evaluation } = splitForEvaluation(training, undefined);
    expect(evaluation).toMatchObject({ heldOut: true, source: "training_file" });
    expect(evaluation.cases.map((c) => c.reply)).toEqual([
      "Answer 9.",
      "Answer 19.",
      "Answer 29.",
      "Answer 39.",
      "Answer 49.",
    ]);
    expect(train).toHaveLength(45);
    for (const c of evaluation.cases) expect(train.map((e) => e.messages[1]?.content)).not.toContain(c.reply);
    const big = splitForEvaluation(many(5000), undefined);
    expect(big.evaluation.cases.length).toBeLessThanOrEqual(MAX_EVAL_EXAMPLES);
    expect(big.train.length).toBe(5000 - big.evaluation.cases.length);
  });

  it("a small training file is evaluated on what it trains on, and says so", () => {
    const { train, evaluation } = splitForEvaluation(many(9), undefined);
    expect(train).toHaveLength(9);
    expect(evaluation).toMatchObject({ heldOut: false, source: "training_file" });
    expect(evaluation.cases).toHaveLength(9);
  });

  it("spreads a sample over the whole file", () => {
    const replies = pickCases(many(64), 4).map((c) => c.reply);
    expect(replies).toEqual(["Answer 0.", "Answer 16.", "Answer 32.", "Answer 48."]);
  });
});

describe("the verdict", () => {
  const e = (loss: number, exactMatches: number): Evaluation => ({
    loss,
    perplexity: Math.exp(loss),
    tokenAccuracy: 0.5,
    exactMatches,
    examples: 8,
    tokens: 100,
  });

  it("more exact answers win; at equal answers, the lower loss", () => {
    expect(improved(e(3, 0), e(4, 2))).toBe(true);
    expect(improved(e(3, 2), e(1, 1))).toBe(false);
    expect(improved(e(3, 1), e(2, 1))).toBe(true);
    expect(improved(e(2, 1), e(2, 1))).toBe(false);
  });

  it("names the figures, and warns when the examples were trained on", () => {
    expect(verdict(e(3, 0), e(1, 5), { heldOut: true, source: "validation_file" })).toBe(
      "The fine-tuned model is better than the base on 8 held-out examples (the validation file): loss 3.0000 → 1.0000, exact answers 0 → 5 of 8",
    );
    expect(verdict(e(1, 0), e(3, 0), { heldOut: false, source: "training_file" })).toMatch(
      /^The fine-tuned model is not better than the base on 8 training examples \(too few to hold any out/,
    );
  });

  it("writes one CSV row per evaluation", () => {
    const csv = evaluationCsv(
      [
        { ...e(3, 0), epoch: 0 },
        { ...e(1, 5), epoch: 1 },
      ],
      { heldOut: true, source: "training_file" },
    ).split("\n");
    expect(csv[1]).toBe("0,base,8,true,training_file,100,3,20.08554,0.5,0");
    expect(csv[2]).toMatch(/^1,epoch 1,8,true,training_file,100,1,2\.71828,0\.5,5$/);
  });
});

describe("scoring with the built-in model", () => {
  let s: TestServer;
  let llama: Awaited<ReturnType<typeof testRuntime>>;
  beforeAll(async () => {
    s = await startServer();
    llama = await testRuntime();
  });
  afterAll(async () => {
    await s?.close();
  });

  it("its own greedy answer is an exact match with a lower loss than an answer it would not give", async () => {
    const question = "What is the capital of France?";
    const reply = await s.client.chat.completions.create({
      model: "tiny",
      messages: [{ role: "user", content: question }],
      temperature: 0,
      max_tokens: 24,
    });
    const own = reply.choices[0]?.message.content ?? "";
    expect(reply.choices[0]?.finish_reason).toBe("stop");
    const text = await modelText(TINY_MODEL);
    const score = (answer: string) =>
      evaluateModel(llama, TINY_MODEL, [{ messages: [{ role: "user", content: question }], reply: answer }], text, {
        threads: 1,
        contextSize: 512,
      });
    const mine = await score(own);
    const other = await score("Zebra violin 42 purple.");
    expect(mine).toMatchObject({ exactMatches: 1, examples: 1 });
    expect(other).toMatchObject({ exactMatches: 0, examples: 1 });
    expect(mine.loss).toBeLessThan(other.loss);
    // The reply's own tokens are the model's first choices; what the template writes after the
    // turn's end token (a line break) is scored too, and greedy decoding never reaches it.
    expect(mine.tokenAccuracy).toBeGreaterThanOrEqual((mine.tokens - 1) / mine.tokens);
    expect(mine.tokenAccuracy).toBeGreaterThan(other.tokenAccuracy);
    expect(mine.perplexity).toBeCloseTo(Math.exp(mine.loss), 6);
  });
});

describe("the learning rate schedule", () => {
  it("starts at the peak and decays linearly so the job would end at a tenth of it", () => {
    expect(epochLearningRate(1e-3, 0, 1)).toBe(1e-3);
    expect([0, 1].map((e) => epochLearningRate(1, e, 2))).toEqual([1, 0.55]);
    const eight = Array.from({ length: 8 }, (_, e) => epochLearningRate(1, e, 8));
    expect(eight[0]).toBe(1);
    for (let e = 1; e < 8; e++) expect(eight[e]).toBeLessThan(eight[e - 1] as number);
    expect(eight[7]).toBeCloseTo(0.2125, 10);
  });
});
