// Legacy completions on local GGUF models: the prompt goes to the model raw (no chat
// template), n choices per prompt run on the leased sequences in waves, echo and suffix
// (fill-in-the-middle) as llama-server takes them.
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import { Generation } from "../engine/generation.ts";
import type { LoadedModel, ModelPool } from "../engine/pool.ts";
import { contextLengthExceeded, invalidRequest } from "../openai/errors.ts";
import { type CompletionRequest, completionPrompts, LEGACY_DEFAULT_MAX_TOKENS } from "../openai/text-completions.ts";
import { EventQueue } from "./event-queue.ts";
import { leased, settle } from "./llama-lease.ts";
import { checkTokenIds, choiceSampling, completionBudget, samplingFor, stopList } from "./llama-request.ts";
import type { ChatContext, ChatEvent, ChatStream } from "./provider.ts";

export async function localCompletion(
  pool: ModelPool,
  modelId: string,
  req: CompletionRequest,
  ctx: ChatContext,
): Promise<ChatStream> {
  const spec = pool.spec(modelId);
  if (!spec) throw new Error(`model ${modelId} is not a local model`);
  const prompts = completionPrompts(req.prompt);
  const n = req.n ?? 1;
  const choices = prompts.length * n;
  // More choices than sequences run in waves on the sequences leased.
  const { lease, prepared } = await leased(
    pool,
    modelId,
    Math.min(choices, spec.parallel),
    ctx.signal,
    (loaded) => ({
      plans: prompts.map((prompt, i) => {
        const tokens = rawPrompt(loaded, prompt, req.suffix, i);
        const maxTokens =
          (req.max_tokens ?? LEGACY_DEFAULT_MAX_TOKENS) === 0
            ? 0
            : completionBudget(loaded, tokens.length, req.max_tokens ?? LEGACY_DEFAULT_MAX_TOKENS, "max_tokens");
        const echo = req.echo ? (typeof prompt === "string" ? prompt : loaded.model.detokenize(prompt as Token[])) : "";
        return { prompt: tokens, echo, maxTokens };
      }),
      sampling: samplingFor(req, loaded),
    }),
    // One prompt: to the sequence that already holds it, if one does.
    ({ plans }) => (plans.length === 1 ? plans[0]?.prompt : undefined),
  );
  const { plans, sampling } = prepared;
  const stop = stopList(req.stop);

  const queue = new EventQueue<ChatEvent>();
  let promptTokens = 0;
  let completionTokens = 0;
  let cachedPromptTokens = 0;
  for (const plan of plans) promptTokens += plan.prompt.length * n;
  const runChoice = async (sequence: LlamaContextSequence, index: number) => {
    const plan = plans[Math.floor(index / n)] as (typeof plans)[number];
    if (plan.echo) queue.push({ type: "content", index, text: plan.echo });
    if (plan.maxTokens === 0) {
      queue.push({ type: "finish", index, reason: "length" });
      return;
    }
    const generation = new Generation(
      lease.loaded.model,
      sequence,
      {
        prompt: plan.prompt,
        maxTokens: plan.maxTokens,
        stop,
        sampling: choiceSampling(sampling, index % n),
        grammar: undefined,
        topLogprobs: req.logprobs ?? undefined,
      },
      {
        text: (text, logprobs) => {
          queue.push({ type: "content", index, text, logprobs });
          return undefined;
        },
        end: ({ finishReason, completionTokens: count, cachedPromptTokens: cached }) => {
          completionTokens += count;
          cachedPromptTokens += cached;
          if (finishReason !== "aborted") queue.push({ type: "finish", index, reason: finishReason });
        },
      },
      ctx.signal,
    );
    await lease.run(sequence, generation);
  };
  const runs = lease.sequences.map(async (sequence, slot) => {
    for (let index = slot; index < choices; index += lease.sequences.length) {
      if (ctx.signal.aborted) return;
      await runChoice(sequence, index);
    }
  });
  settle(runs, lease, queue);
  return { events: queue, usage: () => ({ promptTokens, completionTokens, cachedPromptTokens }) };
}

/**
 * A legacy prompt as the model reads it: the text tokenized with its special tokens (the
 * client writes the whole prompt, template markers included, as llama-server takes it), or
 * the client's own token ids; with `suffix`, framed with the model's fill-in-the-middle tokens.
 */
function rawPrompt(loaded: LoadedModel, prompt: string | number[], suffix: string | undefined, i: number): Token[] {
  const { model, spec } = loaded;
  const tokenized = (text: string) => model.tokenize(text, true);
  let tokens: Token[];
  if (typeof prompt === "string") tokens = tokenized(prompt);
  else {
    checkTokenIds(loaded, prompt, `prompt[${i}]`, "prompt");
    tokens = prompt as Token[];
  }
  if (suffix !== undefined) {
    const { prefix, suffix: suffixToken, middle } = model.tokens.infill;
    if (prefix === null || suffixToken === null || middle === null) {
      throw invalidRequest(
        `suffix: model ${spec.id} cannot fill in the middle (its GGUF has no FIM tokens); leave suffix out.`,
        "suffix",
      );
    }
    tokens = [prefix, ...tokens, suffixToken, ...tokenized(suffix), middle];
  }
  const bos = model.tokens.bos;
  if (model.tokens.shouldPrependBosToken && bos !== null && tokens[0] !== bos) tokens = [bos, ...tokens];
  if (tokens.length >= loaded.contextSize) throw contextLengthExceeded(loaded.contextSize, tokens.length);
  return tokens;
}
