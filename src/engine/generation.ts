// One choice of one request on one context sequence: evaluates the prompt (reusing
// the sequence's cached prefix), samples tokens, turns them into text deltas with stop
// sequences held back, and reports logprobs and token counts. It runs as a Stepper so
// the model's LockstepDriver can advance all generations in one batch.
import {
  InputLookupTokenPredictor,
  type LlamaContextSequence,
  type LlamaGrammar,
  LlamaGrammarEvaluationState,
  type LlamaModel,
  type SequenceEvaluateOptions,
  type Token,
  TokenBias,
} from "node-llama-cpp";
import type { Stepper } from "./lockstep.ts";
import { StopMatcher } from "./stop.ts";

export interface Sampling {
  temperature: number;
  topP?: number | undefined;
  topK?: number | undefined;
  minP?: number | undefined;
  seed?: number | undefined;
  repeatPenalty?: number | undefined;
  presencePenalty?: number | undefined;
  frequencyPenalty?: number | undefined;
  /** OpenAI's logit_bias: token id → value added to its logit (−100 bans it). */
  logitBias?: Readonly<Record<number, number>> | undefined;
}

export interface GenerationInput {
  prompt: readonly Token[];
  maxTokens: number;
  stop: readonly string[];
  sampling: Sampling;
  grammar?: LlamaGrammar | undefined;
  /** Report logprobs of each sampled token, with this many alternatives. */
  topLogprobs?: number | undefined;
  /**
   * A grammar that may change while the reply is generated (a lazy tool-call grammar): asked
   * before each token is sampled; undefined leaves that token free. Used instead of `grammar`.
   */
  grammarState?: (() => LlamaGrammarEvaluationState | undefined) | undefined;
  /** A bias that may change while the reply is generated (asked before each token); wins over logitBias. */
  tokenBias?: (() => TokenBias | undefined) | undefined;
  /** Give control tokens' text (`<|channel|>`, `[TOOL_CALLS]`) to the events: a family's parser reads them. */
  specialTokens?: boolean | undefined;
}

export interface TokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export type FinishReason = "stop" | "length";

export interface GenerationEvents {
  /** Returns "stop" to end the reply here (a first tool call when parallel calls are off). */
  text(delta: string, logprobs: TokenLogprob[] | undefined): undefined | "stop";
  /**
   * "aborted": the client went away; the tokens generated until then still count.
   * `cachedPromptTokens`: prompt tokens the sequence already held (not computed again).
   */
  end(result: { finishReason: FinishReason | "aborted"; completionTokens: number; cachedPromptTokens: number }): void;
}

/**
 * Prompt tokens computed per step while running streams wait for their next token: smaller keeps
 * them flowing, larger computes the prompt in fewer, fuller batches.
 */
const PREFILL_CHUNK = 256;

/** The request was sized to fit the sequence before it started, so no context shift can happen. */
export class Generation implements Stepper {
  private iterator: AsyncGenerator<{ token: Token; probabilities?: Map<Token, number> }, void, void> | undefined;
  private readonly generated: Token[] = [];
  private pending: Token[] = [];
  private pendingLogprobs: TokenLogprob[] = [];
  private readonly stops: StopMatcher;
  private finished = false;
  private endTokens = 0;
  /** Prompt tokens the sequence already held when this generation started. */
  private reused = 0;
  /** Prompt tokens still to compute; undefined until the first step. */
  private unevaluated: Token[] | undefined;

  constructor(
    private readonly model: LlamaModel,
    private readonly sequence: LlamaContextSequence,
    private readonly input: GenerationInput,
    private readonly events: GenerationEvents,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.stops = new StopMatcher(input.stop);
  }

  async step(): Promise<boolean> {
    if (this.finished) return false;
    if (this.signal?.aborted) {
      await this.close();
      this.events.end({
        finishReason: "aborted",
        completionTokens: this.generated.length,
        cachedPromptTokens: this.reused,
      });
      return false;
    }
    if (!this.iterator) {
      // A long prompt is computed a chunk per step, each chunk in the same batch as the running
      // streams' next tokens: they keep flowing instead of waiting for the whole prompt.
      this.unevaluated ??= await this.prepare();
      if (this.unevaluated.length > PREFILL_CHUNK) {
        const chunk = this.unevaluated.slice(0, PREFILL_CHUNK);
        this.unevaluated = this.unevaluated.slice(PREFILL_CHUNK);
        await this.sequence.evaluateWithoutGeneratingNewTokens(chunk);
        return true;
      }
      this.iterator = this.start(this.unevaluated);
    }
    if (this.generated.length >= this.input.maxTokens) return this.finish("length");
    const next = await this.iterator.next();
    if (next.done) return this.finish("stop");
    const { token, probabilities } = next.value;
    // The end-of-generation token was generated (and is counted, as llama-server counts it)
    // but is never text.
    if (this.model.isEogToken(token)) {
      this.endTokens = 1;
      return this.finish("stop");
    }
    this.generated.push(token);
    this.pending.push(token);
    if (this.input.topLogprobs !== undefined && probabilities) {
      this.pendingLogprobs.push(this.logprobOf(token, probabilities));
    }
    // Hold back tokens that end inside a multi-byte character until it is complete.
    const text = this.model.detokenize(
      this.pending,
      this.input.specialTokens ?? false,
      this.generated.slice(0, -this.pending.length),
    );
    if (text.endsWith("\uFFFD") && this.pending.length < 4) return true;
    this.pending = [];
    const { emit, stopped } = this.stops.push(text);
    if (this.emit(emit) === "stop") return this.finish("stop");
    if (stopped) return this.finish("stop");
    return true;
  }

  /** The prompt's tokens the sequence must still compute (after erasing what differs). */
  private async prepare(): Promise<Token[]> {
    // Reuse what the sequence already holds of this prompt (multi-turn chats share
    // their history), but always evaluate at least the last prompt token for logits.
    const prompt = [...this.input.prompt];
    const { firstDifferentIndex } = this.sequence.compareContextTokens(prompt);
    const keep = Math.min(firstDifferentIndex, prompt.length - 1);
    this.reused = keep;
    if (keep < this.sequence.nextTokenIndex) {
      await this.sequence.eraseContextTokenRanges([{ start: keep, end: this.sequence.nextTokenIndex }]);
    }
    // Prompt lookup guesses from the prompt: it is told what this one is.
    const predictor = this.sequence.tokenPredictor;
    if (predictor instanceof InputLookupTokenPredictor) predictor.updateInputTokens(prompt);
    return prompt.slice(keep);
  }

  private start(rest: Token[]) {
    const options = this.evaluateOptions();
    const wantProbabilities = this.input.topLogprobs !== undefined;
    return this.sequence.evaluateWithMetadata(
      rest,
      { probabilities: wantProbabilities },
      { ...options, yieldEogToken: true },
    );
  }

  private evaluateOptions(): SequenceEvaluateOptions {
    const s = this.input.sampling;
    const options: SequenceEvaluateOptions = {
      temperature: s.temperature,
      topP: s.topP,
      topK: s.topK,
      minP: s.minP,
      seed: s.seed,
    };
    if (s.repeatPenalty !== undefined || s.presencePenalty || s.frequencyPenalty) {
      options.repeatPenalty = {
        punishTokens: () => this.generated.slice(-64),
        penalty: s.repeatPenalty ?? 1,
        presencePenalty: s.presencePenalty ?? 0,
        frequencyPenalty: s.frequencyPenalty ?? 0,
      };
    }
    let fixed: TokenBias | undefined;
    if (s.logitBias && Object.keys(s.logitBias).length > 0) {
      fixed = logitBias(this.model, s.logitBias);
      options.tokenBias = fixed;
    }
    const dynamic = this.input.tokenBias;
    if (dynamic) {
      const none = fixed ?? new TokenBias(this.model.tokenizer);
      options.tokenBias = () => dynamic() ?? none;
    }
    if (this.input.grammarState) options.grammarEvaluationState = this.input.grammarState;
    else if (this.input.grammar) {
      options.grammarEvaluationState = new LlamaGrammarEvaluationState({
        model: this.model,
        grammar: this.input.grammar,
      });
    }
    return options;
  }

  private logprobOf(token: Token, probabilities: Map<Token, number>): TokenLogprob {
    const entry = (t: Token, p: number) => {
      const text = this.model.detokenize([t], true);
      return { token: text, logprob: p > 0 ? Math.log(p) : -9999, bytes: [...Buffer.from(text, "utf8")] };
    };
    const top: TokenLogprob["top_logprobs"] = [];
    for (const [t, p] of probabilities) {
      if (top.length >= (this.input.topLogprobs ?? 0)) break;
      top.push(entry(t, p));
    }
    return { ...entry(token, probabilities.get(token) ?? 0), top_logprobs: top };
  }

  private emit(text: string): undefined | "stop" {
    const logprobs = this.input.topLogprobs !== undefined ? this.pendingLogprobs : undefined;
    if (text.length === 0 && !(logprobs && logprobs.length > 0)) return undefined;
    this.pendingLogprobs = [];
    return this.events.text(text, logprobs);
  }

  private async finish(finishReason: FinishReason): Promise<boolean> {
    if (this.pending.length > 0) {
      const text = this.model.detokenize(
        this.pending,
        this.input.specialTokens ?? false,
        this.generated.slice(0, -this.pending.length),
      );
      this.pending = [];
      const { emit, stopped } = this.stops.push(text);
      this.emit(emit);
      if (stopped) finishReason = "stop";
    }
    this.emit(this.stops.flush());
    await this.close();
    this.events.end({
      finishReason,
      completionTokens: this.generated.length + this.endTokens,
      cachedPromptTokens: this.reused,
    });
    return false;
  }

  /** Ends the token generator so node-llama-cpp frees its evaluation state now. */
  async close(): Promise<false> {
    this.finished = true;
    await this.iterator?.return();
    return false;
  }
}

/**
 * OpenAI's logit_bias as node-llama-cpp's TokenBias: −100 (or less) bans a token, anything else
 * is added to its logit. TokenBias.set skips end-of-generation tokens (its docs: a bias on EOS
 * or EOT "has no effect"), but OpenAI's applies to every token, and −100 on the end token is how
 * a client asks for a reply that does not end early (llama-server and vLLM honour it too). For
 * those the bias goes into TokenBias's map directly, which the sampler reads as it reads any
 * other (the node-llama-cpp version is pinned; test/integration/chat.test.ts checks it still works).
 */
export function logitBias(model: LlamaModel, biases: Readonly<Record<number, number>>): TokenBias {
  const bias = new TokenBias(model.tokenizer);
  const map = (bias as unknown as { _biases?: unknown })._biases;
  for (const [key, value] of Object.entries(biases)) {
    const token = Number(key) as Token;
    const logit = value <= -100 ? Number.NEGATIVE_INFINITY : value;
    if (model.isEogToken(token) && map instanceof Map) map.set(token, logit);
    else bias.set(token, value <= -100 ? "never" : { logit });
  }
  return bias;
}
