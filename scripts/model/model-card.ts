// models/MODEL-CARD.md: what the shipped tiny model is, how it was made and how it
// behaves, written by the script that made it so the figures cannot drift.
import { writeFileSync } from "node:fs";
import type { ModelSpec } from "./architecture.ts";
import type { FinetuneResult } from "./pipeline.ts";
import type { Evaluation } from "./quality.ts";
import type { Recipe } from "./recipe.ts";

export interface ModelCardFacts {
  command: string;
  name: string;
  seed: number;
  recipe: Recipe;
  spec: ModelSpec;
  parameters: number;
  corpus: { dialogues: number; tokens: number; packedTokens: number; padding: number };
  training: { context: number; epochs: number; lr: number; lrMin: number; valSplit: number; threads: number };
  result: FinetuneResult;
  files: Record<string, string>;
  sizes: Record<string, number>;
  quality: Record<string, Evaluation>;
  totalSeconds: number;
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(2)} MB`;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
/** Inline code in a table cell: newlines shown as ⏎, pipes escaped. */
const cell = (s: string) => `\`${s.replaceAll("\n", "⏎").replaceAll("|", "\\|").replaceAll("`", "'")}\``;

export function renderModelCard(f: ModelCardFacts): string {
  const d = f.spec.dims;
  const r = f.result;
  const t = f.training;
  const lines = [
    `# ${f.name}`,
    "",
    "The built-in model of Roundhouse: a tiny llama-architecture model with its own",
    "tokenizer, trained from scratch on generated chat dialogues so that the quick start",
    "and every test have a real model without downloading anything. It memorised a few",
    "hundred question → answer pairs (capitals, colours, animal sounds, opposites, small",
    "sums, spelling, counting, greetings, short stories, JSON answers). It knows nothing",
    "else: use it to exercise the server, not to judge quality.",
    "",
    "## How it was made",
    "",
    "```sh",
    "npm run tools        # builds llama-finetune and llama-quantize from node-llama-cpp's llama.cpp",
    f.command,
    "```",
    "",
    `Deterministic from seed ${f.seed}: 1 and 2 threads gave byte-identical files here; another`,
    "CPU may round differently. The recipe is `RECIPE` in scripts/model/recipe.ts.",
    "",
    `1. Generate the dialogues (scripts/model/corpus.ts, each fact asked ${f.recipe.repeats} times) and render them with the chat template.`,
    `   Pack them into blocks of ${Math.ceil(t.context / 256) * 128} tokens (scripts/model/packing.ts) so that every training window starts on a dialogue.`,
    "2. Train a BPE vocabulary on that text (scripts/model/bpe.ts: SPM format, byte fallback).",
    "3. Write the initial F32 GGUF (scripts/model/architecture.ts, src/engine/gguf.ts), see below.",
    `4. \`llama-finetune -c ${t.context} -b ${t.context} -ub ${t.context} -epochs ${t.epochs} -lr ${t.lr} -lr-min ${t.lrMin} -decay-epochs ${t.epochs} -val-split ${t.valSplit} -t ${t.threads}\``,
    `5. Restore the metadata training drops (chat template, file type, context length ${d.contextLength}).`,
    "6. `llama-quantize` to Q8_0 and Q4_0.",
    "",
    "### Why the initial weights are not just random",
    "",
    "llama-finetune never updates the token embeddings, attn_k or attn_v (K and V reach",
    "attention through the KV cache, which passes no gradient back). From a plain random",
    "start, keys are a fixed random function of each token, attention cannot learn where",
    "to look, and the model trains into a bigram model that answers every question alike.",
    "So the initial model is built to make attention usable without training keys:",
    "",
    "- every token embedding is a random vector, plus one component shared by all tokens,",
    `  plus ${f.recipe.semanticDims} dimensions of co-occurrence statistics of the training text (PPMI + SVD,`,
    "  scripts/model/embeddings.ts), so words used alike (animals, names, numbers) point alike;",
    "- positional heads have keys that read only the shared component (the same key for",
    "  every token, turned by RoPE) and queries set so that RoPE makes them attend a fixed",
    `  number of tokens back; the plan per layer is \`${f.recipe.attention}\``,
    "  (c: content heads, random keys, queries left to training);",
    "- attn_output and ffn_down start large enough for context to show in the residual",
    "  stream from the first step.",
    "",
    "## Parameters",
    "",
    "| | |",
    "|---|---|",
    `| parameters | ${f.parameters.toLocaleString("en-US")} |`,
    `| embedding / layers / heads × head width | ${d.nEmbd} / ${d.nLayer} / ${d.nHead} × ${d.headDim} |`,
    `| feed-forward | ${d.nFf} |`,
    `| vocabulary | ${d.nVocab} tokens (control: \`<|system|>\` \`<|user|>\` \`<|assistant|>\` \`<|end|>\`; EOS \`<|end|>\`) |`,
    `| context length | ${d.contextLength} (trained on ${Math.ceil(t.context / 256) * 256}-token windows, ${t.context} tokens per optimizer step) |`,
    `| corpus | ${f.corpus.dialogues} dialogues, ${f.corpus.tokens.toLocaleString("en-US")} tokens; packed for training: ${f.corpus.packedTokens.toLocaleString("en-US")} (${pct(f.corpus.padding)} padding) |`,
    "",
    "## Files",
    "",
    "| file | size |",
    "|---|---|",
    ...Object.entries(f.files).map(([k, path]) => `| ${path} | ${mb(f.sizes[k] ?? 0)} |`),
    `| (F32 before quantization, not shipped) | ${mb(f.sizes.f32 ?? 0)} |`,
    "",
    "`roundhouse-tiny-embed-q8_0.gguf` is the Q8_0 file with `llama.pooling_type = 1` (mean) and no",
    "chat template (scripts/model/embedding-model.ts): the built-in embedding model.",
    "",
    "## Training",
    "",
    `${t.epochs} epochs in ${r.seconds.toFixed(0)} s on ${t.threads} threads (whole script: ${f.totalSeconds.toFixed(0)} s).`,
    "",
    "| epoch | train loss | train acc | val loss | val acc |",
    "|---|---|---|---|---|",
    ...r.epochs.map(
      (e, i) =>
        `| ${i} | ${e.train.loss.toFixed(3)} | ${pct(e.train.accuracy)} | ${e.val?.loss.toFixed(3) ?? "–"} | ${e.val ? pct(e.val.accuracy) : "–"} |`,
    ),
    "",
    "The validation split is the last 5% of the training text; its dialogues repeat facts",
    "seen earlier, so it measures memorisation, not generalisation.",
    "",
    "## Replies at temperature 0",
    "",
    ...Object.entries(f.quality).map(
      ([k, q]) =>
        `${k}: ${q.right} of ${q.items.length} evaluation prompts answered right (${q.seconds.toFixed(1)} s).`,
    ),
    "",
  ];
  const [first] = Object.entries(f.quality);
  if (first) {
    const [k, q] = first;
    lines.push(
      `Generated through node-llama-cpp with the model's own Jinja template, ${k}:`,
      "",
      "| prompt | reply | expected | right |",
      "|---|---|---|---|",
      ...q.items.map((j) => {
        const prompt = j.messages.map((m) => `${m.role}: ${typeof m.content === "string" ? m.content : ""}`).join("\n");
        return `| ${cell(prompt)} | ${cell(j.reply)} | ${cell(j.expected)} | ${j.right ? "yes" : "no"} |`;
      }),
      "",
    );
  }
  return lines.join("\n");
}

export function writeModelCard(path: string, facts: ModelCardFacts): void {
  writeFileSync(path, renderModelCard(facts));
}
