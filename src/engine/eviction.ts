// Which loaded models to unload before loading another: a pure decision, so every
// rule (LRU order, memory budget, model count, never a busy model) is unit-tested.

export interface LoadedModelState {
  id: string;
  /** Estimated resident bytes (weights + context), from the GGUF. */
  bytes: number;
  /** Monotonic time of last use; smaller is older. */
  lastUsed: number;
  /** Requests running or waiting on the model. A busy model is never evicted. */
  inFlight: number;
}

export interface PoolLimits {
  memoryBudget?: number | undefined;
  maxLoadedModels?: number | undefined;
}

export type EvictionPlan = { ok: true; evict: string[] } | { ok: false; reason: string };

export function planEviction(
  target: { id: string; bytes: number },
  loaded: readonly LoadedModelState[],
  limits: PoolLimits,
): EvictionPlan {
  const others = loaded.filter((m) => m.id !== target.id);
  const budget = limits.memoryBudget ?? Number.POSITIVE_INFINITY;
  const maxModels = limits.maxLoadedModels ?? Number.POSITIVE_INFINITY;
  if (target.bytes > budget) {
    return { ok: false, reason: `model ${target.id} needs ~${mib(target.bytes)} but memory_budget is ${mib(budget)}` };
  }
  const fits = (kept: readonly LoadedModelState[]) =>
    kept.length + 1 <= maxModels && kept.reduce((sum, m) => sum + m.bytes, 0) + target.bytes <= budget;

  const evict: string[] = [];
  let kept = [...others];
  const candidates = others.filter((m) => m.inFlight === 0).sort((a, b) => a.lastUsed - b.lastUsed);
  for (const victim of candidates) {
    if (fits(kept)) break;
    evict.push(victim.id);
    kept = kept.filter((m) => m.id !== victim.id);
  }
  if (!fits(kept)) {
    const busy = kept.map((m) => m.id).join(", ");
    return {
      ok: false,
      reason: `cannot load ${target.id}: the models in use (${busy}) leave no room under the pool limits`,
    };
  }
  return { ok: true, evict };
}

function mib(bytes: number): string {
  return Number.isFinite(bytes) ? `${Math.ceil(bytes / 2 ** 20)} MiB` : "unlimited";
}
