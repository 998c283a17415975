// Which variant of an experiment serves a request. Pure: the same experiment, key and weights
// always give the same variant, on every replica, so a user sticks to one variant without any
// shared state. Changing a weight moves only the keys whose point falls in the moved share.
import { createHash } from "node:crypto";

export interface WeightedVariant {
  name: string;
  /** Effective weight: configured or set at run time, 0 once rolled back. */
  weight: number;
}

export type Assignment =
  | { ok: true; variant: string; by: "forced" | "key" | "random" }
  | { ok: false; unknownVariant: string };

export interface AssignmentInput {
  experiment: string;
  /** In configuration order: the order fixes which slice of [0, 1) each variant gets. */
  variants: readonly WeightedVariant[];
  /** Served when every effective weight is 0 (all canaries rolled back, control weighted 0). */
  control: string;
  /** Sticky header value, else the request's `user`; undefined → random. */
  key: string | undefined;
  /** x-roundhouse-variant. */
  forced: string | undefined;
  /** A uniform number in [0, 1), used only without a key. */
  random: () => number;
}

export function assignVariant(input: AssignmentInput): Assignment {
  if (input.forced !== undefined) {
    if (!input.variants.some((v) => v.name === input.forced)) return { ok: false, unknownVariant: input.forced };
    return { ok: true, variant: input.forced, by: "forced" };
  }
  const point = input.key === undefined ? input.random() : pointOf(input.experiment, input.key);
  return {
    ok: true,
    variant: pick(input.variants, point) ?? input.control,
    by: input.key === undefined ? "random" : "key",
  };
}

/**
 * A key's point in [0, 1): the first 48 bits of sha256(experiment NUL key). The experiment is
 * part of the hash so one user does not land on the canary of every experiment at once.
 */
export function pointOf(experiment: string, key: string): number {
  const digest = createHash("sha256").update(experiment).update("\0").update(key).digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** The variant whose slice of [0, 1) holds `point`, slices in order sized by weight; undefined when all weights are 0. */
export function pick(variants: readonly WeightedVariant[], point: number): string | undefined {
  const total = variants.reduce((sum, v) => sum + Math.max(0, v.weight), 0);
  if (total <= 0) return undefined;
  let edge = 0;
  let last: string | undefined;
  for (const v of variants) {
    if (v.weight <= 0) continue;
    edge += v.weight / total;
    last = v.name;
    if (point < edge) return v.name;
  }
  // Rounding can leave the edge a hair under 1.
  return last;
}

/** The sticky key: the header's value, else `user`, else OpenAI's newer `safety_identifier`; blank counts as absent. */
export function assignmentKey(...candidates: readonly (string | null | undefined)[]): string | undefined {
  for (const c of candidates) if (c !== undefined && c !== null && c.trim() !== "") return c;
  return undefined;
}
