// Cost avoided: what the traffic a local model served would have cost on a priced API model
// (models.yaml `reference_price`). Counting every prompt and reply with tiktoken would cost
// ~1.3 µs of CPU per token on the request path (over 1 ms for a 1k-token prompt) and would
// need the text, which the record must not keep. Instead each model's exact counts are
// scaled by a ratio measured once: reference tokens / local tokens of CALIBRATION_TEXT.
// Per request that is two multiplications. The price is accuracy: with the built-in model's
// small vocabulary against gpt-4o-mini, the ratio was within 7% on chat prose, README text
// and JSON, 15% on DESIGN.md, and 30-40% off on source code and German, where small
// vocabularies fall apart faster than o200k does. Treat the figure as an estimate.
import type { TokenUsage } from "../providers/provider.ts";
import { CALIBRATION_TEXT } from "./calibration-text.ts";
import type { ReferenceCost } from "./record.ts";
import type { TokenCounter } from "./tokens.ts";

export interface ReferencePrice {
  model: string;
  /** US dollars per million prompt tokens. */
  input_per_1m: number;
  /** US dollars per million completion tokens. */
  output_per_1m: number;
}

export class ReferencePricing {
  /** Reference tokens per local token, per local model id; set when the model loads. */
  private readonly ratios = new Map<string, number>();
  /** Tokens of CALIBRATION_TEXT per reference model name. */
  private readonly referenceTokens = new Map<string, number>();

  /**
   * Counts the calibration text with each reference model's encoding now (about 0.3 s per
   * distinct encoding, once, at start) so no request ever waits for tiktoken.
   */
  constructor(
    private readonly prices: ReadonlyMap<string, ReferencePrice>,
    counter: Pick<TokenCounter, "countTokens">,
  ) {
    for (const { model } of prices.values()) {
      if (!this.referenceTokens.has(model))
        this.referenceTokens.set(model, counter.countTokens(CALIBRATION_TEXT, model));
    }
  }

  /** Whether `modelId` has a reference price, i.e. whether calibrate() is worth calling. */
  priced(modelId: string): boolean {
    return this.prices.has(modelId);
  }

  /** Records the local tokenizer's count of CALIBRATION_TEXT for a model that just loaded. */
  calibrate(modelId: string, localTokens: number): void {
    const price = this.prices.get(modelId);
    const reference = price && this.referenceTokens.get(price.model);
    if (reference === undefined || localTokens <= 0) return;
    this.ratios.set(modelId, reference / localTokens);
  }

  /** The same usage on the reference model; undefined for unpriced models and empty usage. */
  estimate(modelId: string | undefined, usage: TokenUsage | undefined): ReferenceCost | undefined {
    const price = modelId === undefined ? undefined : this.prices.get(modelId);
    if (!price || !usage || usage.promptTokens + usage.completionTokens === 0) return undefined;
    // Uncalibrated (the model's tokenizer was never read): count one for one rather than guess.
    const ratio = this.ratios.get(modelId as string) ?? 1;
    const prompt = Math.round(usage.promptTokens * ratio);
    const completion = Math.round(usage.completionTokens * ratio);
    const cost = (prompt * price.input_per_1m + completion * price.output_per_1m) / 1_000_000;
    return { model: price.model, prompt_tokens: prompt, completion_tokens: completion, cost_usd: cost };
  }

  ratio(modelId: string): number | undefined {
    return this.ratios.get(modelId);
  }
}
