// From uploaded JSONL to what llama-finetune needs: the examples rendered through the
// base model's own chat template (as the built-in model's corpus is), the training
// and validation text joined into one file, and the plan of training windows that
// tells whether the data is long enough and where validation starts.
import { ChatTemplate, type TemplateMessage } from "../engine/chat-template.ts";
import { readGguf } from "../engine/gguf.ts";
import { type Example, parseDataset, renderDataset } from "./dataset.ts";

export interface ModelText {
  template: ChatTemplate;
  /** Text of the BOS token, put before each example ("" when the model adds none). */
  bos: string;
  /** The served file's context length, restored into the trained file. */
  contextLength: number;
  /** The chat template written back into the trained file. */
  templateSource: string;
}

/** What a model's GGUF says about how its text looks. `override` is models.yaml's chat_template. */
export async function modelText(path: string, override?: string): Promise<ModelText> {
  const { metadata } = await readGguf(path);
  const str = (key: string) => {
    const v = metadata.get(key);
    return v?.type === "string" ? v.value : undefined;
  };
  const num = (key: string) => {
    const v = metadata.get(key);
    return v !== undefined && v.type !== "array" && typeof v.value === "number" ? v.value : undefined;
  };
  const tokens = metadata.get("tokenizer.ggml.tokens");
  const bosId = num("tokenizer.ggml.bos_token_id");
  const eosId = num("tokenizer.ggml.eos_token_id");
  const tokenText = (id: number | undefined) =>
    id !== undefined && tokens?.type === "array" && tokens.itemType === "string" ? (tokens.value[id] ?? "") : "";
  const addBos = metadata.get("tokenizer.ggml.add_bos_token");
  const bos = addBos?.type === "bool" && !addBos.value ? "" : tokenText(bosId);
  const arch = str("general.architecture") ?? "llama";
  const source = override ?? str("tokenizer.chat_template");
  const template = new ChatTemplate(source, { bos, eos: tokenText(eosId) });
  return { template, bos, contextLength: num(`${arch}.context_length`) ?? 2048, templateSource: template.source };
}

export function renderExamples(examples: readonly Example[], text: ModelText, seed: number): string {
  return renderDataset(examples, {
    bos: text.bos,
    seed,
    // Generic templates know system/user/assistant/tool; developer is a system turn, as in chat requests.
    render: (messages) =>
      text.template.render(
        messages.map(
          (m): TemplateMessage => ({ role: m.role === "developer" ? "system" : m.role, content: m.content }),
        ),
        { addGenerationPrompt: false },
      ),
  });
}

/** Parses a stored JSONL file; throws with the bad line (files are validated at upload, so this is a guard). */
export function examplesOf(content: Buffer, fileId: string): Example[] {
  const check = parseDataset(content.toString("utf8"));
  if (!check.ok) throw new Error(`file ${fileId} line ${check.line}: ${check.reason}`);
  return check.examples;
}

export interface WindowPlan {
  /** Windows llama-finetune makes from the whole text. */
  windows: number;
  trainWindows: number;
  valWindows: number;
  /** The -val-split that puts exactly `valWindows` at the end. */
  valSplit: number;
}

/**
 * llama-finetune cuts its tokens into windows of `context` stepping context/2
 * (common_opt_dataset_init: (tokens - context - 1) / stride of them) and validates
 * on the last floor(windows × val-split)-th. Training windows are those lying wholly
 * in the training text; the rest validate. Undefined when there is not at least one
 * of each that is needed.
 */
export function planWindows(trainTokens: number, valTokens: number, context: number): WindowPlan | undefined {
  const stride = Math.floor(context / 2);
  const total = trainTokens + valTokens;
  const windows = Math.floor((total - context - 1) / stride);
  if (total < context + 1 || windows < 1) return undefined;
  if (valTokens === 0) return { windows, trainWindows: windows, valWindows: 0, valSplit: 0 };
  // Validation text shorter than a window would only be scored as the tail of training windows.
  if (valTokens < context) return undefined;
  const inTrain = trainTokens < context + 1 ? 0 : Math.floor((trainTokens - context - 1) / stride) + 1;
  const trainWindows = Math.min(windows - 1, inTrain);
  if (trainWindows < 1) return undefined;
  const valWindows = windows - trainWindows;
  // llama-finetune truncates windows × (1 - split): nudge the split so rounding lands on trainWindows.
  const valSplit = valWindows / windows - 0.5 / windows;
  return { windows, trainWindows, valWindows, valSplit };
}

/**
 * The window llama-finetune really trains on for a configured context: llama.cpp pads
 * every context to a multiple of 256 tokens (llama_context's constructor), and the
 * trainer cuts its windows at that padded length.
 */
export function trainerWindow(context: number): number {
  return Math.ceil(context / 256) * 256;
}

/** The fewest tokens of text that make one training window. */
export function minimumTokens(context: number): number {
  return context + 1 + Math.floor(context / 2);
}
