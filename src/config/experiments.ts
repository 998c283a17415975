// Experiments in models.yaml: the cross-field rules the zod schema cannot express (names that
// must not collide, models that must exist, exactly one control), and resolution into the
// shape the traffic layer uses (alias → model id, "5m" → ms, header names lower-cased).
//
// The control is the variant marked `control: true`, else the first variant that is not a
// canary. It is what canaries' `max_vs_control` rules and the results' tests compare with,
// and where a failing variant falls back to.
import type { z } from "zod";
import { parseDurationMs } from "./duration.ts";
import type { ExperimentEntry, ModelEntry } from "./schema.ts";

export type RollbackMetric = "error_rate" | "latency_p95_ms" | "ttft_p95_ms";

export interface RollbackRuleSpec {
  metric: RollbackMetric;
  /** Exactly one of `max` and `maxVsControl` is set. */
  max: number | undefined;
  maxVsControl: number | undefined;
  minRequests: number;
  windowMs: number;
}

export interface VariantSpec {
  name: string;
  /** Model ids (aliases resolved) in fallback order. */
  models: string[];
  weight: number;
  canary: boolean;
  /** Past its own models, a failing request may try control's. */
  fallback: boolean;
  rollback: RollbackRuleSpec[];
}

export interface ExperimentSpec {
  name: string;
  /** Lower case, as Hono's header lookup is case-insensitive but logs read better this way. */
  stickyHeader: string;
  variants: VariantSpec[];
  /** Name of the control variant. */
  control: string;
  /** Key ids that may force a variant (besides the admin key) when API keys are configured. */
  forceKeys: readonly string[];
}

export interface ExperimentStateConfig {
  store: "file" | "redis";
  url: string;
  pollMs: number;
}

interface ExperimentsInput {
  models: readonly ModelEntry[];
  experiments: readonly ExperimentEntry[];
}

/** The control's index: the one marked `control: true`, else the first non-canary; -1 when none. */
export function controlIndex(variants: readonly { canary: boolean; control?: boolean | undefined }[]): number {
  const marked = variants.findIndex((v) => v.control === true);
  return marked >= 0 ? marked : variants.findIndex((v) => !v.canary);
}

/**
 * Adds an issue for each problem; `owner` maps every model id and alias to its model's index.
 * Issues carry paths so models.yaml errors point at the line.
 */
export function checkExperiments(
  config: ExperimentsInput,
  owner: ReadonlyMap<string, number>,
  ctx: z.core.$RefinementCtx,
): void {
  const names = new Set<string>();
  config.experiments.forEach((experiment, i) => {
    const at = (...path: PropertyKey[]) => ["experiments", i, ...path];
    const issue = (path: PropertyKey[], message: string) => ctx.addIssue({ code: "custom", path, message });
    const model = owner.get(experiment.name);
    if (model !== undefined) {
      issue(at("name"), `"${experiment.name}" is already the id or alias of models[${model}]; pick another name`);
    }
    if (names.has(experiment.name)) issue(at("name"), `experiment "${experiment.name}" is defined twice`);
    names.add(experiment.name);

    const variantNames = new Set<string>();
    let marked = 0;
    experiment.variants.forEach((variant, j) => {
      if (variantNames.has(variant.name))
        issue(at("variants", j, "name"), `variant "${variant.name}" is defined twice`);
      variantNames.add(variant.name);
      const models = typeof variant.model === "string" ? [variant.model] : variant.model;
      models.forEach((id, k) => {
        if (!owner.has(id)) {
          const path = typeof variant.model === "string" ? at("variants", j, "model") : at("variants", j, "model", k);
          issue(path, `"${id}" is not the id or alias of any model`);
        }
      });
      if (variant.control === true) {
        marked++;
        if (variant.canary) issue(at("variants", j, "control"), "a canary cannot be the control");
      }
      if (variant.rollback.length > 0 && !variant.canary) {
        issue(
          at("variants", j, "rollback"),
          "rollback rules need canary: true (the control is what they compare with)",
        );
      }
      variant.rollback.forEach((rule, k) => {
        const path = at("variants", j, "rollback", k);
        if ((rule.max === undefined) === (rule.max_vs_control === undefined)) {
          issue(path, "set exactly one of max and max_vs_control");
        }
        if (rule.metric === "error_rate" && rule.max !== undefined && rule.max > 1) {
          issue([...path, "max"], `an error rate is at most 1, got ${rule.max}`);
        }
      });
    });
    if (marked > 1) issue(at("variants"), "at most one variant may have control: true");
    else if (controlIndex(experiment.variants) < 0) {
      issue(at("variants"), "needs a control: a variant that is not a canary, or one with control: true");
    }
    if (!experiment.variants.some((v) => v.weight > 0)) {
      issue(at("variants"), "at least one variant needs a weight above 0");
    }
  });
}

/** Checked experiments → specs; `modelIdOf` maps an id or alias to the model's id. */
export function resolveExperiments(
  experiments: readonly ExperimentEntry[],
  modelIdOf: (name: string) => string,
): ExperimentSpec[] {
  return experiments.map((e) => {
    const control = e.variants[controlIndex(e.variants)]?.name ?? "";
    return {
      name: e.name,
      stickyHeader: e.sticky_header.toLowerCase(),
      control,
      forceKeys: e.force_keys,
      variants: e.variants.map((v) => ({
        name: v.name,
        models: (typeof v.model === "string" ? [v.model] : v.model).map(modelIdOf),
        weight: v.weight,
        canary: v.canary,
        fallback: v.fallback,
        rollback: v.rollback.map((r) => ({
          metric: r.metric,
          max: r.max,
          maxVsControl: r.max_vs_control,
          minRequests: r.min_requests,
          // The schema's pattern guarantees the parse succeeds.
          windowMs: parseDurationMs(r.window) ?? 300_000,
        })),
      })),
    };
  });
}
