// models/MODEL-CARD.md: what the shipped tiny model is, how it was made and how it
// behaves, written by the script that made it so the figures cannot drift.
import { writeFileSync } from "node:fs";
import type { ModelSpec } from "./architecture.ts";
import type { FinetuneResult } from "./pipeline.ts";
import type { Evaluation } from "./quality.ts";

export interface ModelCardFacts {
  command: string;
  name: string;
  seed: number;
  spec: ModelSpec;
  parameters: number;
  corpus: { dialogues: number; chars: number; tokens: number };
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
    "The built-in model of Switchyard: a tiny llama-architecture model with its own",
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
    `Deterministic from seed ${f.seed}: the corpus (scripts/model/corpus.ts), the BPE vocabulary`,
    "(scripts/model/bpe.ts) and the random initial weights (scripts/model/architecture.ts)",
    "are seeded; llama-finetune's result depends on the thread count and the CPU.",
    "",
    "1. Generate the dialogues and render them with the chat template.",
    "2. Train a BPE vocabulary on that text (SPM format, byte fallback).",
    "3. Write an untrained F32 GGUF (scripts/make-model.ts, src/engine/gguf.ts).",
    `4. \`llama-finetune -c ${t.context} -b ${t.context} -ub ${t.context} -epochs ${t.epochs} -lr ${t.lr} -lr-min ${t.lrMin} -decay-epochs ${t.epochs} -val-split ${t.valSplit} -t ${t.threads}\``,
    `5. Restore the metadata training drops (chat template, file type, context length ${d.contextLength}).`,
    "6. `llama-quantize` to Q8_0 and Q4_0.",
    "",
    "## Parameters",
    "",
    "| | |",
    "|---|---|",
    `| parameters | ${f.parameters.toLocaleString("en-US")} |`,
    `| embedding / layers / heads (kv) | ${d.nEmbd} / ${d.nLayer} / ${d.nHead} (${d.nHeadKv}) |`,
    `| feed-forward | ${d.nFf} |`,
    `| vocabulary | ${d.nVocab} tokens (control: \`<|system|>\` \`<|user|>\` \`<|assistant|>\` \`<|end|>\`; EOS \`<|end|>\`) |`,
    `| context length | ${d.contextLength} (trained on ${t.context}-token windows) |`,
    `| corpus | ${f.corpus.dialogues} dialogues, ${f.corpus.chars.toLocaleString("en-US")} characters, ${f.corpus.tokens.toLocaleString("en-US")} tokens |`,
    "",
    "## Files",
    "",
    "| file | size |",
    "|---|---|",
    ...Object.entries(f.files).map(([k, path]) => `| ${path} | ${mb(f.sizes[k] ?? 0)} |`),
    `| (F32 before quantization, not shipped) | ${mb(f.sizes.f32 ?? 0)} |`,
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
