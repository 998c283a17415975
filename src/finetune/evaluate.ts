// Every job is evaluated on held-out examples, before training (the base) and after each
// epoch: the loss of the reference replies (teacher forcing: mean negative log-likelihood of
// each reply token given the conversation before it, end-of-turn markers included, as the
// trainer sees them), its perplexity, token accuracy, and whether the greedy answer is exactly
// the reference. The choice of examples is pure; scoring runs the model through node-llama-cpp.
import type { ControlledEvaluateInputItem, Llama, LlamaModel, Token } from "node-llama-cpp";
import type { TemplateMessage } from "../engine/chat-template.ts";
import { tokenizePrompt } from "../engine/prompt-tokens.ts";
import type { Example } from "./dataset.ts";
import type { ModelText } from "./prepare.ts";

/** Most examples one evaluation scores (greedy answers cost a generation each). */
export const MAX_EVAL_EXAMPLES = 16;

/** A training file this large gives up some examples for evaluation when no validation file is given. */
export const MIN_EXAMPLES_TO_HOLD_OUT = 10;

/** One held-out exchange: the conversation up to the last assistant turn, and that turn's text. */
export interface EvalCase {
  messages: TemplateMessage[];
  reply: string;
}

export interface EvalSet {
  cases: EvalCase[];
  /** False when the examples were also trained on (too few to hold any out). */
  heldOut: boolean;
  /** Where they came from, for the job's events. */
  source: "validation_file" | "training_file";
}

export interface Evaluation {
  /** Mean negative log-likelihood per reply token (nats). */
  loss: number;
  perplexity: number;
  /** Reply tokens the model's top choice got right, 0..1. */
  tokenAccuracy: number;
  /** Examples whose greedy answer is exactly the reference (whitespace at the ends aside). */
  exactMatches: number;
  examples: number;
  tokens: number;
}

/** The conversation before an example's last assistant turn and that turn; undefined when nothing precedes it. */
export function evalCaseOf(example: Example): EvalCase | undefined {
  const last = example.messages.findLastIndex((m) => m.role === "assistant");
  if (last <= 0) return undefined;
  const messages = example.messages
    .slice(0, last)
    .map((m): TemplateMessage => ({ role: m.role === "developer" ? "system" : m.role, content: m.content }));
  return { messages, reply: example.messages[last]?.content ?? "" };
}

/** Up to `max` cases spread evenly over `examples`, in order. */
export function pickCases(examples: readonly Example[], max = MAX_EVAL_EXAMPLES): EvalCase[] {
  const cases = examples.flatMap((e) => evalCaseOf(e) ?? []);
  if (cases.length <= max) return cases;
  return Array.from({ length: max }, (_, i) => cases[Math.floor((i * cases.length) / max)] as EvalCase);
}

/**
 * Which examples train and which evaluate. A validation file evaluates; without one, a training
 * file of MIN_EXAMPLES_TO_HOLD_OUT or more gives up every tenth example (at most
 * MAX_EVAL_EXAMPLES) to evaluation and trains on the rest; a smaller one is evaluated on the
 * examples it trains on, and says so.
 */
export function splitForEvaluation(
  training: readonly Example[],
  validation: readonly Example[] | undefined,
): { train: Example[]; evaluation: EvalSet } {
  if (validation !== undefined) {
    return {
      train: [...training],
      evaluation: { cases: pickCases(validation), heldOut: true, source: "validation_file" },
    };
  }
  if (training.length < MIN_EXAMPLES_TO_HOLD_OUT) {
    return {
      train: [...training],
      evaluation: { cases: pickCases(training), heldOut: false, source: "training_file" },
    };
  }
  const every = Math.max(10, Math.ceil(training.length / MAX_EVAL_EXAMPLES));
  const held = training.filter((e, i) => i % every === every - 1 && evalCaseOf(e) !== undefined);
  return {
    train: training.filter((e) => !held.includes(e)),
    evaluation: { cases: pickCases(held), heldOut: true, source: "training_file" },
  };
}

/** Whether `after` is better than `before` on the same examples: a lower loss, or more exact answers. */
export function improved(before: Evaluation, after: Evaluation): boolean {
  return (
    after.exactMatches > before.exactMatches || (after.exactMatches === before.exactMatches && after.loss < before.loss)
  );
}

/** One line a person reads: the figures of an evaluation. */
export function describeEvaluation(e: Evaluation): string {
  return `loss ${e.loss.toFixed(4)} (perplexity ${formatPerplexity(e.perplexity)}), token accuracy ${(e.tokenAccuracy * 100).toFixed(1)}%, exact answers ${e.exactMatches}/${e.examples}`;
}

function formatPerplexity(p: number): string {
  return Number.isFinite(p) ? (p < 1000 ? p.toFixed(2) : p.toExponential(2)) : "∞";
}

/** Scores `cases` with the GGUF at `path`. Examples longer than the context it makes are skipped. */
export async function evaluateModel(
  llama: Llama,
  path: string,
  cases: readonly EvalCase[],
  text: ModelText,
  opts: { threads: number; contextSize: number; signal?: AbortSignal | undefined },
): Promise<Evaluation> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    // An epoch's file says the trainer's window is its context: no longer one than that.
    const contextSize = Math.min(opts.contextSize, model.trainContextSize);
    const context = await model.createContext({ contextSize, sequences: 1, threads: opts.threads });
    try {
      const sequence = context.getSequence();
      let nll = 0;
      let tokens = 0;
      let right = 0;
      let exactMatches = 0;
      let examples = 0;
      for (const c of cases) {
        opts.signal?.throwIfAborted();
        const { prompt, full } = await caseTokens(model, text, c);
        if (full.length > context.contextSize || prompt.length >= full.length) continue;
        await sequence.clearHistory();
        const scored = await scoreReply(sequence, full, prompt.length);
        await sequence.clearHistory();
        const answer = await greedyAnswer(model, sequence, prompt, full.length - prompt.length + 2);
        nll += scored.nll;
        tokens += scored.tokens;
        right += scored.right;
        if (answer.trim() === c.reply.trim()) exactMatches++;
        examples++;
      }
      const loss = tokens === 0 ? Number.NaN : nll / tokens;
      return {
        loss,
        perplexity: Math.exp(loss),
        tokenAccuracy: tokens === 0 ? 0 : right / tokens,
        exactMatches,
        examples,
        tokens,
      };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** The prompt's tokens (up to the assistant's turn) and the whole exchange's, rendered as chat requests are. */
async function caseTokens(
  model: LlamaModel,
  text: ModelText,
  c: EvalCase,
): Promise<{ prompt: Token[]; full: Token[] }> {
  const prompt = await tokenizePrompt(model, text.template.renderPrompt(c.messages));
  const full = await tokenizePrompt(
    model,
    text.template.renderPrompt([...c.messages, { role: "assistant", content: c.reply }], {
      addGenerationPrompt: false,
    }),
  );
  // The reply is what the whole exchange adds to the prompt; a template that renders the two
  // differently (no common prefix) is scored from where they part.
  let same = 0;
  while (same < prompt.length && prompt[same] === full[same]) same++;
  return { prompt: prompt.slice(0, same), full };
}

type Sequence = ReturnType<Awaited<ReturnType<LlamaModel["createContext"]>>["getSequence"]>;

/** Teacher forcing over `full`: each token from `from` on, given those before it. */
async function scoreReply(
  sequence: Sequence,
  full: readonly Token[],
  from: number,
): Promise<{ nll: number; tokens: number; right: number }> {
  const input = full.map((token, i): ControlledEvaluateInputItem => {
    const next = full[i + 1];
    if (i < from - 1 || next === undefined) return token;
    return [
      token,
      {
        generateNext: {
          token: true,
          totalLogitWeight: true,
          options: { temperature: 0 },
          // The top token's logit (it is the one greedy sampling selects) and the next one's.
          logits: { filter: { tokens: [next], includeSelected: true } },
        },
      },
    ];
  });
  const outputs = await sequence.controlledEvaluate(input);
  let nll = 0;
  let tokens = 0;
  let right = 0;
  outputs.forEach((out, i) => {
    const next = full[i + 1];
    if (!out || next === undefined) return;
    const top = out.next.token;
    const logits = out.next.logits;
    const weight = out.next.totalLogitWeight;
    if (top === undefined || top === null || !logits || weight === undefined) return;
    const maxLogit = logits.get(top) ?? 0;
    const logit = logits.get(next) ?? Number.NEGATIVE_INFINITY;
    // log softmax: logit − max − log Σ exp(l − max).
    nll -= logit - maxLogit - Math.log(weight);
    tokens++;
    if (top === next) right++;
  });
  return { nll, tokens, right };
}

/** The greedy answer's text, up to the end of the turn (an end-of-generation or control token). */
async function greedyAnswer(
  model: LlamaModel,
  sequence: Sequence,
  prompt: Token[],
  maxTokens: number,
): Promise<string> {
  const out: Token[] = [];
  for await (const token of sequence.evaluate(prompt, { temperature: 0 })) {
    if (model.isEogToken(token) || model.isSpecialToken(token) || out.length >= maxTokens) break;
    out.push(token);
  }
  return model.detokenize(out);
}

/** An evaluation at one point of a job: `epoch` 0 is the base, before training. */
export interface EvaluationRow extends Evaluation {
  epoch: number;
}

/** The job's evaluation as a results file: one row per evaluation, the base first. */
export function evaluationCsv(rows: readonly EvaluationRow[], set: Pick<EvalSet, "heldOut" | "source">): string {
  const lines = ["epoch,model,examples,held_out,source,tokens,loss,perplexity,token_accuracy,exact_matches"];
  for (const r of rows) {
    lines.push(
      [
        r.epoch,
        r.epoch === 0 ? "base" : `epoch ${r.epoch}`,
        r.examples,
        set.heldOut,
        set.source,
        r.tokens,
        round(r.loss),
        round(r.perplexity),
        round(r.tokenAccuracy),
        r.exactMatches,
      ].join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The job's last word on its evaluation: did the fine-tuned model beat the base, with the figures. */
export function verdict(base: Evaluation, last: Evaluation, set: Pick<EvalSet, "heldOut" | "source">): string {
  const on = set.heldOut
    ? `${last.examples} held-out examples (${set.source === "validation_file" ? "the validation file" : "kept out of training"})`
    : `${last.examples} training examples (too few to hold any out: this says little about new inputs)`;
  const better = improved(base, last);
  return `${better ? "The fine-tuned model is better than the base" : "The fine-tuned model is not better than the base"} on ${on}: loss ${base.loss.toFixed(4)} → ${last.loss.toFixed(4)}, exact answers ${base.exactMatches} → ${last.exactMatches} of ${last.examples}`;
}

function round(x: number): number | string {
  return Number.isFinite(x) ? Math.round(x * 1e5) / 1e5 : "";
}
