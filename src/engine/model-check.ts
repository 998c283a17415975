// Configured local models checked before the server listens, so a config that cannot work
// fails at start with file:line:field rather than as 503s later: the file exists and is a GGUF
// (its sha256 checked when pinned), a draft model (speculative: draft) shares its vocabulary, a
// model that lists rerank has a classification head,
// context_size is within what the model was trained on (or lowered to it, unless
// allow_context_overflow), and the model with context_size × parallel sequences fits in this
// machine's memory and in memory_budget.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { totalmem } from "node:os";
import { type GgufFileInfo, GgufInsights, type Llama, readGgufFileInfo } from "node-llama-cpp";
import { ConfigError, type ConfigProblem } from "../config/errors.ts";
import { isHuggingFaceUri, type LlamaModelConfig } from "../config/load.ts";
import { type ContextShape, estimateMemory } from "./memory-estimate.ts";

export interface ModelCheckOptions {
  /** Bytes of RAM the models may use; the machine's total by default. */
  ram?: number;
  /** memory_budget, when configured. */
  memoryBudget?: number | undefined;
  /** Told when a context_size is lowered to the trained context. */
  warn?(message: string): void;
}

/** What the check settled for a model: the context size to create. */
export interface CheckedModel {
  contextSize: number;
}

export async function checkLocalModels(
  llama: Llama,
  file: string,
  models: readonly LlamaModelConfig[],
  options: ModelCheckOptions = {},
): Promise<Map<string, CheckedModel>> {
  const checked = new Map<string, CheckedModel>();
  const problems: ConfigProblem[] = [];
  for (const model of models) {
    const problem = (field: string, message: string): ConfigProblem => ({
      line: model.at.line(field),
      field: `models[${model.at.index}].${field}`,
      message,
    });
    // An hf: file is resolved (downloaded) when first loaded; nothing to read yet.
    if (isHuggingFaceUri(model.path)) {
      checked.set(model.id, { contextSize: model.context_size });
      continue;
    }
    const fileProblem = await checkFile(model);
    if (fileProblem) {
      problems.push(problem(fileProblem.field, fileProblem.message));
      continue;
    }
    const info = await readGgufFileInfo(model.path);
    const draft = model.speculative?.method === "draft" ? model.speculative.model : undefined;
    const draftInfo = draft === undefined ? undefined : await checkDraft(info, draft);
    if (typeof draftInfo === "string") {
      problems.push(problem("speculative.model", draftInfo));
      continue;
    }
    const insights = await GgufInsights.from(info, llama);
    if (model.operations?.includes("rerank") && !insights.supportsRanking) {
      problems.push(
        problem(
          "operations",
          `${model.id} lists rerank, but its GGUF cannot rerank: it has no classification head (cls.weight or cls.output.weight); use a reranker GGUF (bge-reranker, Qwen3-Reranker) or leave rerank out`,
        ),
      );
      continue;
    }
    const trained = insights.trainContextSize;
    let contextSize = model.context_size;
    if (trained !== undefined && contextSize > trained && !model.allow_context_overflow) {
      contextSize = trained;
      options.warn?.(
        `${file}:${model.at.line("context_size") ?? "?"}: models[${model.at.index}].context_size: ${model.context_size} is more than the ${trained} tokens ${model.id} was trained on; using ${trained} (allow_context_overflow: true keeps it)`,
      );
    }
    const need = await estimateMemory(llama, insights, shapeOf(model), contextSize);
    if (draftInfo) {
      // The draft model has a context of the same size beside it.
      const drafted = await estimateMemory(
        llama,
        await GgufInsights.from(draftInfo, llama),
        shapeOf(model),
        contextSize,
      );
      for (const key of ["model", "context", "total", "ram", "vram"] as const) need[key] += drafted[key];
    }
    const ram = options.ram ?? totalmem();
    const what = `${model.id} needs about ${gib(need.total)} (model ${gib(need.model)} + context ${gib(need.context)} for context_size ${contextSize} × parallel ${model.parallel})`;
    const fix = "lower context_size or parallel";
    if (need.ram > ram) {
      problems.push(problem("context_size", `${what}, more than this machine's ${gib(ram)} of RAM; ${fix}`));
    } else if (need.vram > 0 && need.vramTotal > 0 && need.vram > need.vramTotal) {
      problems.push(
        problem("context_size", `${what}, more than the GPU's ${gib(need.vramTotal)}; ${fix} or gpu_layers`),
      );
    } else if (options.memoryBudget !== undefined && need.total > options.memoryBudget) {
      problems.push(problem("context_size", `${what}, more than memory_budget (${gib(options.memoryBudget)}); ${fix}`));
    }
    checked.set(model.id, { contextSize });
  }
  if (problems.length > 0) throw new ConfigError(file, problems);
  return checked;
}

function shapeOf(model: LlamaModelConfig): ContextShape {
  return {
    gpuLayers: model.gpu_layers,
    parallel: model.parallel,
    batchSize: model.batch_size,
    flashAttention: model.flash_attention,
  };
}

async function checkFile(model: LlamaModelConfig): Promise<{ field: string; message: string } | undefined> {
  const fileProblem = await checkGgufFile(model.path);
  if (fileProblem) return { field: "path", message: fileProblem };
  if (model.sha256) {
    const actual = await sha256Of(model.path);
    if (actual !== model.sha256) {
      return { field: "sha256", message: `the file's sha256 is ${actual}, not the pinned ${model.sha256}` };
    }
  }
  return undefined;
}

/** Why `path` is not a GGUF file, or undefined. */
async function checkGgufFile(path: string): Promise<string | undefined> {
  try {
    const info = await stat(path);
    if (!info.isFile()) return `${path} is not a file`;
  } catch {
    return `file not found: ${path}`;
  }
  const handle = await open(path, "r");
  const magic = Buffer.alloc(4);
  try {
    await handle.read(magic, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (magic.toString("latin1") !== "GGUF") return `${path} is not a GGUF file (it does not begin with "GGUF")`;
  return undefined;
}

/**
 * Reads the draft model's GGUF and answers it, or why it cannot draft for the model: the checks
 * llama.cpp's speculative decoding makes (common_speculative_are_compatible): the same tokenizer
 * kind, BOS and EOS, at most 128 tokens more or fewer, and the same text for every token both
 * have from id 5 on (a padded vocabulary, as Qwen2.5-0.5B's beside 7B's, passes).
 */
async function checkDraft(target: GgufFileInfo, path: string): Promise<GgufFileInfo | string> {
  const fileProblem = await checkGgufFile(path);
  if (fileProblem) return fileProblem;
  const draft = await readGgufFileInfo(path);
  const vocab = (info: GgufFileInfo) => {
    const t = (info.metadata as { tokenizer?: { ggml?: Record<string, unknown> } }).tokenizer?.ggml ?? {};
    return {
      kind: t.model,
      tokens: Array.isArray(t.tokens) ? (t.tokens as unknown[]) : [],
      bos: t.bos_token_id,
      eos: t.eos_token_id,
    };
  };
  const [a, b] = [vocab(target), vocab(draft)];
  const differs = (what: string, x: unknown, y: unknown) =>
    `its ${what} (${String(y)}) is not the model's (${String(x)})`;
  let why: string | undefined;
  if (a.kind !== b.kind) why = differs("tokenizer", a.kind, b.kind);
  else if (a.bos !== b.bos) why = differs("BOS token", a.bos, b.bos);
  else if (a.eos !== b.eos) why = differs("EOS token", a.eos, b.eos);
  else if (Math.abs(a.tokens.length - b.tokens.length) > 128) {
    why = `it has ${b.tokens.length} tokens, the model ${a.tokens.length}`;
  } else {
    const shared = Math.min(a.tokens.length, b.tokens.length);
    for (let id = 5; id < shared && why === undefined; id++) {
      if (a.tokens[id] !== b.tokens[id]) {
        why = `token ${id} is ${JSON.stringify(b.tokens[id])} in it and ${JSON.stringify(a.tokens[id])} in the model`;
      }
    }
  }
  return why === undefined ? draft : `${path} cannot draft for this model: ${why}; a draft must share its vocabulary`;
}

export async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}
