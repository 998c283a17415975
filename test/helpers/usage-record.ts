// A minimal finished-request record, for tests of the usage logs: every required field,
// the rest left out, so a test names only what it is about.
import type { UsageRecord } from "../../src/telemetry/record.ts";

export function usageRecord(fields: Partial<UsageRecord> = {}): UsageRecord {
  return {
    request_id: "req-1",
    started_at: "2026-01-01T00:00:00.000Z",
    key_id: "anonymous",
    status: 200,
    stream: false,
    client_disconnected: false,
    prompt_tokens: 3,
    completion_tokens: 4,
    estimated: false,
    latency_ms: 12.5,
    fallbacks: 0,
    ...fields,
  };
}
