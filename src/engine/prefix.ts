// Where a request's prompt starts from before it is computed: what its own sequence holds, a
// start copied from another sequence (llama.cpp's seq_cp: no file, no compute), a conversation
// loaded from the prompt cache, or (when another sequence is computing the same start right now)
// that sequence once it has: a shared system prompt is computed once, and a returning
// conversation pays for its new tokens only. planPrefix decides (pure); restorePrefix does it.
import type { LlamaContextSequence, Token } from "node-llama-cpp";
import type { LoadedModel } from "./pool.ts";
import { commonPrefix, type SavedPrompt } from "./prompt-cache.ts";

/**
 * Tokens a source must start the prompt with beyond what the request's own sequence holds, for
 * loading or copying it to pay: below it, computing them again is as quick.
 */
export const MIN_RESTORE_GAIN = 32;

/** A sequence holding fewer tokens than this is not saved when overwritten: they are quickly computed again. */
export const MIN_SAVE_TOKENS = 64;

/** Where a request's prefix could come from, as the choice sees it. */
export interface PrefixSource<T> {
  source: T;
  /** Tokens of the prompt it holds now, from the start. */
  commonPrefix: number;
  /**
   * A sequence still computing its own prompt: the tokens of this prompt it will hold once it
   * gets there (its prompt and this one share them).
   */
  promised?: number | undefined;
}

export interface PrefixPlan<T> {
  /**
   * Wait until this sequence has computed the start both prompts share, then plan again: it is
   * computed once instead of twice side by side (a shared system prompt, several users at once).
   */
  wait: T | undefined;
  /** Load or copy this first; undefined: keep what the sequence holds. */
  restore: T | undefined;
  /** Save the sequence's state before it is overwritten. */
  save: boolean;
}

/**
 * What to do with the sequence a request runs on before it starts (pure): wait for a sequence
 * that is computing a longer start of the prompt than is anywhere now; else load the source
 * holding the most of it when that beats the sequence's own prefix by MIN_RESTORE_GAIN, and save
 * the sequence first when it would lose at least MIN_SAVE_TOKENS' worth of a conversation nobody
 * saved yet (`held`: tokens it holds; `heldPrefix`: of them, the prompt's start; `heldSaved`: a
 * saved state covers them already).
 */
export function planPrefix<T>(
  sequence: { held: number; heldPrefix: number; heldSaved: boolean },
  sources: readonly PrefixSource<T>[],
  promptLength: number,
): PrefixPlan<T> {
  // Generation always computes the prompt's last token again (for its logits).
  const usable = (n: number) => Math.min(n, Math.max(0, promptLength - 1));
  let best: PrefixSource<T> | undefined;
  let promised: PrefixSource<T> | undefined;
  for (const s of sources) {
    if (!best || s.commonPrefix > best.commonPrefix) best = s;
    if (s.promised !== undefined && (!promised || s.promised > (promised.promised ?? 0))) promised = s;
  }
  const have = Math.max(usable(sequence.heldPrefix), usable(best?.commonPrefix ?? 0));
  if (promised && usable(promised.promised ?? 0) >= have + MIN_RESTORE_GAIN) {
    return { wait: promised.source, restore: undefined, save: false };
  }
  const restore =
    best && usable(best.commonPrefix) >= usable(sequence.heldPrefix) + MIN_RESTORE_GAIN ? best.source : undefined;
  const kept = restore === undefined ? usable(sequence.heldPrefix) : 0;
  const save = !sequence.heldSaved && sequence.held >= MIN_SAVE_TOKENS && sequence.held - kept >= MIN_RESTORE_GAIN;
  return { wait: undefined, restore, save };
}

/**
 * Copies what `source` holds of the first `upTo` tokens into `target` (llama.cpp's seq_cp: no
 * file, no compute). node-llama-cpp has it only as an internal method (the version is pinned in
 * package.json); without it the caller falls back to saved states and computing.
 */
export async function copySequence(
  target: LlamaContextSequence,
  source: LlamaContextSequence,
  upTo: number,
): Promise<boolean> {
  const copy = copyMethod(target);
  if (copy === undefined) return false;
  if ((await copy.call(target, source, upTo)) === true) return true;
  // A copy that did not come out as asked may leave the tokens it lists and the state apart.
  await target.clearHistory();
  return false;
}

/**
 * Whether copySequence can copy into `target`: not when it has a token predictor (speculative
 * decoding), which a copy leaves out of step; a model's sequences all have one or none.
 */
export function canCopyInto(target: LlamaContextSequence): boolean {
  return target.tokenPredictor === undefined && copyMethod(target) !== undefined;
}

type CopyMethod = (source: LlamaContextSequence, upTo: number) => Promise<unknown>;

function copyMethod(target: LlamaContextSequence): CopyMethod | undefined {
  const copy = (target as unknown as { _copyStateFromOtherSequence?: unknown })._copyStateFromOtherSequence;
  return typeof copy === "function" ? (copy as CopyMethod) : undefined;
}

/**
 * Gives `target`, the one sequence a request runs on, the best start of `prompt` there is before
 * the request computes the rest (ModelLease.preferPrefix): see planPrefix.
 */
export async function restorePrefix(
  loaded: LoadedModel,
  target: LlamaContextSequence,
  prompt: Token[],
  signal: AbortSignal | undefined,
  reported: (operation: "copied" | "restored", tokens: number) => void,
): Promise<void> {
  type Source = { sequence: LlamaContextSequence } | { saved: SavedPrompt };
  const cache = loaded.promptCache;
  for (;;) {
    const sources: PrefixSource<Source>[] = [
      ...loaded.sequences
        .filter((s) => s !== target && canCopyInto(target))
        .map((s) => {
          const computing = loaded.computing.get(s);
          return {
            source: { sequence: s },
            commonPrefix: s.compareContextTokens(prompt).firstDifferentIndex,
            promised: computing && commonPrefix(computing, prompt),
          };
        }),
      ...(cache?.candidates(prompt).map((c) => ({ source: { saved: c.source }, commonPrefix: c.commonPrefix })) ?? []),
    ];
    const held = target.contextTokens;
    const plan = planPrefix(
      {
        held: held.length,
        heldPrefix: target.compareContextTokens(prompt).firstDifferentIndex,
        // Without a prompt cache nothing is saved.
        heldSaved: cache === undefined || cache.covers(held),
      },
      sources,
      prompt.length,
    );
    if (plan.wait && "sequence" in plan.wait && !signal?.aborted) {
      await computed(loaded, plan.wait.sequence, prompt, signal);
      continue;
    }
    if (plan.save) await cache?.save(target);
    const from = plan.restore;
    if (from === undefined) return;
    if ("sequence" in from) {
      const upTo = Math.min(from.sequence.compareContextTokens(prompt).firstDifferentIndex, prompt.length - 1);
      if (await copySequence(target, from.sequence, upTo)) reported("copied", upTo);
    } else if (await cache?.restore(target, from.saved)) {
      reported("restored", from.saved.tokens.length);
    }
    return;
  }
}

/**
 * Resolves once `source` holds as much of `prompt` as the prompt it is computing shares with it,
 * or stops computing it (its request ended or failed), or `signal` aborts. Polled: node-llama-cpp
 * reports a prompt's progress only through the tokens a sequence holds, one batch at a time.
 */
async function computed(
  loaded: LoadedModel,
  source: LlamaContextSequence,
  prompt: Token[],
  signal: AbortSignal | undefined,
): Promise<void> {
  const planned = loaded.computing.get(source);
  if (!planned) return;
  const goal = Math.min(commonPrefix(planned, prompt), prompt.length - 1);
  while (
    loaded.computing.get(source) === planned &&
    !signal?.aborted &&
    source.compareContextTokens(prompt).firstDifferentIndex < goal
  ) {
    await new Promise((resolve) => setTimeout(resolve, COMPUTED_POLL_MS));
  }
}

/** How often a request waiting for another sequence's prompt looks at its progress. */
const COMPUTED_POLL_MS = 5;
