// How a finished request counts for its experiment variant: the one definition shared by the
// rollback rules and the results, so the error rate that rolls a canary back is the one
// /admin/experiments shows.
import type { VariantSpec } from "../config/experiments.ts";
import type { UsageRecord } from "../telemetry/record.ts";

/**
 * ok: the variant's own models answered. failed: they did not: a server-side error (5xx,
 * 429, an error event inside a stream) or a fallback outside the variant served it.
 * client_error: any other 4xx, which the client would get from any model. disconnected: the
 * client left first (499), which says nothing about the model.
 */
export type Outcome = "ok" | "failed" | "client_error" | "disconnected";

export function outcomeOf(record: UsageRecord, variant: VariantSpec): Outcome {
  if (record.client_disconnected) return "disconnected";
  if (record.error_type !== undefined) {
    const clientError = record.status >= 400 && record.status < 500 && record.status !== 429;
    return clientError ? "client_error" : "failed";
  }
  return record.served_model !== undefined && variant.models.includes(record.served_model) ? "ok" : "failed";
}

/** Latency and TTFT count only where the variant's model did the work: an ok request that was not a cache hit. */
export function timesModel(record: UsageRecord, outcome: Outcome): boolean {
  return outcome === "ok" && record.cache !== "hit";
}
