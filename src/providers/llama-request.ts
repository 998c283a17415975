// What a request asks of a local model, checked against the model and put in the engine's terms:
// its sampling (the model's configured defaults where the request sets none), how many tokens
// its completion may take, its stop strings, and the token ids it sent.
import { randomInt } from "node:crypto";
import type { Sampling } from "../engine/generation.ts";
import type { LoadedModel } from "../engine/pool.ts";
import { completionDoesNotFit, invalidRequest } from "../openai/errors.ts";

export interface SamplingRequest {
  temperature?: number | null | undefined;
  top_p?: number | null | undefined;
  seed?: number | null | undefined;
  presence_penalty?: number | null | undefined;
  frequency_penalty?: number | null | undefined;
  logit_bias?: Record<string, number> | null | undefined;
}

export function samplingFor(req: SamplingRequest, loaded: LoadedModel): Sampling {
  const { spec } = loaded;
  checkTokenIds(loaded, Object.keys(req.logit_bias ?? {}).map(Number), "logit_bias", "logit_bias");
  return {
    temperature: req.temperature ?? spec.sampling.temperature ?? 1,
    // OpenAI's defaults (no truncation) unless the model's config sets its own; this also
    // keeps every candidate in the distribution that top_logprobs reads.
    topP: req.top_p ?? spec.sampling.topP ?? 1,
    topK: spec.sampling.topK ?? 0,
    minP: spec.sampling.minP ?? 0,
    seed: req.seed ?? undefined,
    repeatPenalty: spec.sampling.repeatPenalty,
    presencePenalty: req.presence_penalty ?? undefined,
    frequencyPenalty: req.frequency_penalty ?? undefined,
    logitBias: req.logit_bias
      ? Object.fromEntries(Object.entries(req.logit_bias).map(([k, v]) => [Number(k), v]))
      : undefined,
  };
}

/** Token ids a client sent: one past the vocabulary would index outside llama.cpp's arrays. */
export function checkTokenIds(loaded: LoadedModel, ids: readonly number[], where: string, param: string): void {
  const outside = ids.find((id) => id >= loaded.vocabularySize);
  if (outside !== undefined) {
    throw invalidRequest(
      `${where}: token id ${outside} is outside the vocabulary of ${loaded.spec.id} (size ${loaded.vocabularySize}).`,
      param,
    );
  }
}

/** The stop strings a request gave, as a list without empty ones. */
export function stopList(stop: string | readonly string[] | null | undefined): string[] {
  return (typeof stop === "string" ? [stop] : (stop ?? [])).filter((s) => s.length > 0);
}

/** Tokens a completion may take: what was asked, within the model's cap and what the context has left. */
export function completionBudget(
  loaded: LoadedModel,
  promptLength: number,
  asked: number | undefined,
  param: "max_tokens" | "max_completion_tokens",
): number {
  const { spec } = loaded;
  const room = loaded.contextSize - promptLength;
  if (asked !== undefined && spec.maxTokens !== undefined && asked > spec.maxTokens) {
    throw invalidRequest(
      `${param} is too large: ${asked}. Model ${spec.id} supports at most ${spec.maxTokens} completion tokens.`,
      param,
    );
  }
  if (room < 1 || (asked !== undefined && asked > room)) {
    throw completionDoesNotFit(loaded.contextSize, promptLength, asked, param);
  }
  return Math.min(asked ?? room, spec.maxTokens ?? room, room);
}

/** Each choice gets its own seed, so n > 1 gives n samples yet a seeded request repeats exactly. */
export function choiceSampling(sampling: Sampling, index: number): Sampling {
  const seed = sampling.seed !== undefined ? sampling.seed + index : randomInt(2 ** 31);
  return { ...sampling, seed };
}
