// Adds whole-string tokens to a trainable (all-F32) model, the way Qwen 2.5 and Hermes models
// carry `<tool_call>` as one token of their vocabulary. For `tiny-tools` this is what lets it
// choose a tool: spelled in the base vocabulary's pieces, `<tool_call>\n{"name": "` is 13
// tokens, so the name was written 17 tokens after the request, beyond the ~8 the model attends
// to reliably; as two added tokens it is 7.
//
// llama-finetune never updates token embeddings, so a new token keeps the embedding it gets
// here: the mean of the existing ones (which carries the component every token shares, the one
// positional heads read) plus a random part of the same spread, so it is told apart from every
// other token. Its output row trains like any other.
import { GGML_TYPE, type GgufTensorInput, gguf, readGguf, readTensor, writeGguf } from "../../src/engine/gguf.ts";
import { Rng } from "./architecture.ts";

/** llama.cpp's token type for a token matched verbatim before the tokenizer runs (Qwen's added tokens). */
const USER_DEFINED = 4;

export async function addTokens(src: string, dst: string, pieces: readonly string[], seed: number): Promise<void> {
  const file = await readGguf(src);
  const m = file.metadata;
  const tokens = m.get("tokenizer.ggml.tokens");
  const scores = m.get("tokenizer.ggml.scores");
  const types = m.get("tokenizer.ggml.token_type");
  if (tokens?.type !== "array" || tokens.itemType !== "string") throw new Error(`${src}: no tokenizer.ggml.tokens`);
  if (scores?.type !== "array" || types?.type !== "array") throw new Error(`${src}: no token scores or types`);
  const have = new Set(tokens.value as string[]);
  const added = pieces.filter((p) => !have.has(p));
  const nVocab = tokens.value.length + added.length;
  m.set("tokenizer.ggml.tokens", gguf.strings([...(tokens.value as string[]), ...added]));
  m.set("tokenizer.ggml.scores", gguf.numbers("f32", [...(scores.value as number[]), ...added.map(() => 0)]));
  m.set(
    "tokenizer.ggml.token_type",
    gguf.numbers("i32", [...(types.value as number[]), ...added.map(() => USER_DEFINED)]),
  );
  const arch = m.get("general.architecture");
  const prefix = arch?.type === "string" ? arch.value : "llama";
  if (m.has(`${prefix}.vocab_size`)) m.set(`${prefix}.vocab_size`, gguf.u32(nVocab));

  const rng = new Rng(seed);
  const out: GgufTensorInput[] = [];
  for (const t of file.tensors) {
    if (t.type !== GGML_TYPE.F32) throw new Error(`${src}: tensor ${t.name} is not F32; convert the model first`);
    let data = await readTensor(src, file, t.name);
    let dims = t.dims;
    if (t.name === "token_embd.weight" || t.name === "output.weight") {
      const [width, rows] = t.dims as [number, number];
      const grown = new Float32Array(width * (rows + added.length));
      grown.set(data);
      const { mean, std } = rowStats(data, width, rows);
      for (let r = rows; r < rows + added.length; r++) {
        for (let i = 0; i < width; i++) {
          // Output rows start as plain random projections (they train); embeddings keep the
          // shared mean so positional heads find their key in them.
          const base = t.name === "token_embd.weight" ? (mean[i] ?? 0) : 0;
          grown[r * width + i] = base + rng.normal() * (std[i] ?? 0);
        }
      }
      data = grown;
      dims = [width, rows + added.length];
    }
    out.push({ name: t.name, dims, type: "F32", data });
  }
  await writeGguf(dst, m, out);
}

/** Per-column mean and standard deviation over `rows` rows of `width`. */
function rowStats(data: Float32Array, width: number, rows: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(width);
  const std = new Float64Array(width);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < width; i++) mean[i] = (mean[i] ?? 0) + (data[r * width + i] ?? 0) / rows;
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < width; i++) std[i] = (std[i] ?? 0) + ((data[r * width + i] ?? 0) - (mean[i] ?? 0)) ** 2 / rows;
  for (let i = 0; i < width; i++) std[i] = Math.sqrt(std[i] ?? 0);
  return { mean, std };
}
