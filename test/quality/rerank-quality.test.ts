// What a reranking user relies on, measured on the built-in reranker with the wordings of the
// questions its calibration never saw (each fact's last wording): the fact that answers the
// question ranks above facts of the same kind (the capital of another country) and of other
// kinds, and a score is a probability.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { getLlama, type LlamaModel, type LlamaRankingContext } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRng } from "../../scripts/model/corpus.ts";
import { RERANK_LABELS, RERANK_TEMPLATE, rerankFacts } from "../../scripts/model/reranker.ts";
import { readGguf } from "../../src/engine/gguf.ts";
import { REPO } from "../helpers/server.ts";

const RERANK_MODEL = `${REPO}/models/roundhouse-tiny-rerank-f16.gguf`;
const facts = rerankFacts();

describe("built-in reranker", () => {
  let model: LlamaModel;
  let context: LlamaRankingContext;

  beforeAll(async () => {
    const llama = await getLlama({ gpu: false });
    model = await llama.loadModel({ modelPath: RERANK_MODEL });
    context = await model.createRankingContext({ contextSize: 128, threads: 1 });
  });
  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
  });

  it("is a Qwen 3 reranker: rank pooling, a two-label head and its rerank template", async () => {
    const m = (await readGguf(RERANK_MODEL)).metadata;
    expect(m.get("general.architecture")?.value).toBe("qwen3");
    expect(m.get("qwen3.pooling_type")?.value).toBe(4);
    expect(m.get("qwen3.classifier.output_labels")?.value).toEqual([...RERANK_LABELS]);
    expect(m.get("tokenizer.chat_template.rerank")?.value).toBe(RERANK_TEMPLATE);
  });

  it("is what npm run make-rerank-model writes, byte for byte", async () => {
    const dir = mkdtempSync(join(tmpdir(), "roundhouse-rerank-model-"));
    try {
      const out = join(dir, "rerank.gguf");
      await promisify(execFile)("npx", ["tsx", "scripts/make-rerank-model.ts", "--out", out], { cwd: REPO });
      expect(readFileSync(out).equals(readFileSync(RERANK_MODEL))).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("ranks the answering fact first among five for held-out questions at least 85% of the time", async () => {
    const rng = createRng(5);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rng() * list.length)] as T;
    let first = 0;
    let aboveSameKind = 0;
    for (const fact of facts) {
      const same = facts.filter((f) => f.category === fact.category && f !== fact);
      const other = facts.filter((f) => f.category !== fact.category);
      const documents = [fact.reply, pick(same).reply, pick(same).reply, pick(other).reply, pick(other).reply];
      const scores = await context.rankAll(fact.asks.at(-1) as string, documents);
      for (const score of scores) expect(score >= 0 && score <= 1, `score ${score}`).toBe(true);
      if (scores.indexOf(Math.max(...scores)) === 0) first++;
      if ((scores[0] as number) > (scores[1] as number)) aboveSameKind++;
    }
    console.log(
      `held-out questions: answering fact first of 5 in ${first}/${facts.length} (${((first / facts.length) * 100).toFixed(1)}%), ` +
        `above a fact of the same kind in ${aboveSameKind}/${facts.length}`,
    );
    expect(first / facts.length).toBeGreaterThanOrEqual(0.85);
  });
});
