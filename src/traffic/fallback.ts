// Fallbacks: which models a request may try, in order, and which failures let it try the
// next one. A failure may move on only while nothing has reached the client: providers throw
// everything that happens before the first byte from `chat()` (see providers/provider.ts).
import type { VariantSpec } from "../config/experiments.ts";
import { ModelLoadError, QueueFullError, QueueTimeoutError } from "../engine/errors.ts";
import { UpstreamError } from "../providers/upstream/errors.ts";

/**
 * The variant's own models, then, when it falls back and is not the control, control's models
 * not tried yet: a broken canary costs its users a retry, not an error.
 */
export function fallbackOrder(variant: VariantSpec, control: VariantSpec): string[] {
  const order = [...variant.models];
  if (variant.fallback && variant.name !== control.name) {
    for (const id of control.models) if (!order.includes(id)) order.push(id);
  }
  return order;
}

/**
 * Failures of the target rather than of the request: the model cannot load, its queue is full,
 * or no sequence freed up in time; an upstream is unreachable, answers 5xx or 429, refuses
 * Roundhouse's key, or sends nothing within its timeout (UpstreamError.fallsBack). Anything
 * else, such as a prompt too long for the context, an upstream's 400 or a client that went
 * away, would fail the same way anywhere, so it is the answer.
 */
export function canFallBack(err: unknown): boolean {
  if (err instanceof UpstreamError) return err.fallsBack;
  return err instanceof ModelLoadError || err instanceof QueueFullError || err instanceof QueueTimeoutError;
}

/** Tries `targets` in order until one admits the request; rethrows the last failure when none does. */
export async function firstAdmitted<T>(
  targets: readonly string[],
  attempt: (target: string) => Promise<T>,
  onFallback: (from: string, to: string, err: unknown) => void,
): Promise<{ target: string; result: T }> {
  // Built only if needed: an Error captures a stack trace, a cost every request would pay.
  let lastError: unknown;
  for (let i = 0; i < targets.length; i++) {
    const target = targets[i] as string;
    try {
      return { target, result: await attempt(target) };
    } catch (err) {
      lastError = err;
      const next = targets[i + 1];
      if (next === undefined || !canFallBack(err)) throw err;
      onFallback(target, next, err);
    }
  }
  throw lastError ?? new ModelLoadError("(none)", "no model to try");
}
