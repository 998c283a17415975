// What an embedding user relies on, measured on the built-in embedding model: identical texts
// have cosine 1, and a question the model was trained on lies nearer to its paraphrase (the
// training corpus asks each fact in several wordings) than to another fact's question.
import { getLlama, type LlamaEmbeddingContext, type LlamaModel } from "node-llama-cpp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildFacts } from "../../scripts/model/corpus.ts";
import { EMBEDDING_MODEL_NAME, embeddingModelFile } from "../../scripts/model/embedding-model.ts";
import { embed } from "../../src/engine/embeddings.ts";
import { readGguf } from "../../src/engine/gguf.ts";

const facts = buildFacts().filter((f) => f.asks.length >= 2);

describe("built-in embedding model", () => {
  let model: LlamaModel;
  let context: LlamaEmbeddingContext;
  const vectorOf = async (text: string) =>
    (await embed(context, [model.tokenize(text, false)], new AbortController().signal))[0] as number[];
  const cosine = (a: readonly number[], b: readonly number[]) => a.reduce((s, x, i) => s + x * (b[i] as number), 0);

  beforeAll(async () => {
    const llama = await getLlama({ gpu: false });
    model = await llama.loadModel({ modelPath: embeddingModelFile() });
    context = await model.createEmbeddingContext({ contextSize: 256, threads: 1 });
  });
  afterAll(async () => {
    await context?.dispose();
    await model?.dispose();
  });

  it("is the tiny model's weights, named as such and mean-pooled", async () => {
    const metadata = (await readGguf(embeddingModelFile())).metadata;
    expect(metadata.get("general.name")?.value).toBe(EMBEDDING_MODEL_NAME);
    expect(metadata.get("llama.pooling_type")?.value).toBe(1);
  });

  it("gives identical texts cosine 1", async () => {
    const a = await vectorOf("What is the capital of France?");
    expect(cosine(a, await vectorOf("What is the capital of France?"))).toBeCloseTo(1, 6);
  });

  it("puts a trained question nearer its paraphrase than another fact's question at least 85% of the time", async () => {
    const pairs = await Promise.all(
      facts.map(async (f) => [await vectorOf(f.asks[0] as string), await vectorOf(f.asks[1] as string)] as const),
    );
    let nearer = 0;
    for (let i = 0; i < pairs.length; i++) {
      // A fixed, spread-out choice of the other fact, so the figure is the same every run.
      const other =
        pairs[(i * 7919 + 13) % pairs.length === i ? (i + 1) % pairs.length : (i * 7919 + 13) % pairs.length];
      const [question, paraphrase] = pairs[i] as readonly [number[], number[]];
      if (cosine(question, paraphrase) > cosine(question, (other as readonly [number[], number[]])[1])) nearer++;
    }
    const share = nearer / pairs.length;
    console.log(
      `paraphrase nearer than an unrelated question: ${nearer}/${pairs.length} (${(share * 100).toFixed(1)}%)`,
    );
    expect(share).toBeGreaterThanOrEqual(0.85);
  });
});
