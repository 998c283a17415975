// How a finished request counts for its experiment variant: telemetry's one definition
// (outcomeOf in telemetry/record.ts), with the served model checked against the variant for
// records written before they carried `variant_served`.
import type { VariantSpec } from "../config/experiments.ts";
import { type Outcome, outcomeOf as recordOutcome, type UsageRecord } from "../telemetry/record.ts";

export type { Outcome };

export function outcomeOf(record: UsageRecord, variant: VariantSpec): Outcome {
  const outcome = recordOutcome(record);
  if (outcome !== "ok" || record.variant_served !== undefined) return outcome;
  return record.served_model !== undefined && variant.models.includes(record.served_model) ? "ok" : "failed";
}

/** Latency and TTFT count only where the variant's model did the work: an ok request that was not a cache hit. */
export function timesModel(record: UsageRecord, outcome: Outcome): boolean {
  return outcome === "ok" && record.cache !== "hit";
}
