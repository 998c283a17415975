import { describe, expect, it } from "vitest";
import { buildRecord, decodeRate, keyId, outcomeOf, type RequestFacts } from "../../src/telemetry/record.ts";

const facts = (extra: Partial<RequestFacts> = {}): RequestFacts => ({
  requestId: "req-1",
  startedAt: Date.UTC(2025, 5, 12, 8, 0, 0),
  keyId: "anonymous",
  stream: false,
  status: 200,
  clientDisconnected: false,
  estimated: false,
  endMs: 120.456,
  fallbacks: 0,
  ...extra,
});

describe("buildRecord", () => {
  it("keeps counts and timings, and leaves out what did not happen", () => {
    const record = buildRecord(
      facts({
        model: "tiny",
        servedModel: "roundhouse-tiny",
        provider: "llama",
        usage: { promptTokens: 12, completionTokens: 11 },
        firstDeltaMs: 20,
        lastDeltaMs: 120,
      }),
    );
    expect(record).toEqual({
      request_id: "req-1",
      started_at: "2025-06-12T08:00:00.000Z",
      key_id: "anonymous",
      model: "tiny",
      served_model: "roundhouse-tiny",
      provider: "llama",
      status: 200,
      stream: false,
      client_disconnected: false,
      prompt_tokens: 12,
      completion_tokens: 11,
      estimated: false,
      ttft_ms: 20,
      latency_ms: 120.46,
      tokens_per_second: 100,
      fallbacks: 0,
    });
    expect(record.error_type).toBeUndefined();
    expect(JSON.parse(JSON.stringify(record))).not.toHaveProperty("variant");
  });

  it("records a client that went away as 499, whatever was being answered", () => {
    const record = buildRecord(facts({ status: 200, clientDisconnected: true }));
    expect(record.status).toBe(499);
    expect(record.client_disconnected).toBe(true);
    expect(outcomeOf(record)).toBe("disconnected");
  });

  it("keeps OpenAI's error type and code", () => {
    const record = buildRecord(facts({ status: 429, error: { type: "requests", code: "rate_limit_exceeded" } }));
    expect(record).toMatchObject({ status: 429, error_type: "requests", error_code: "rate_limit_exceeded" });
    expect(outcomeOf(record)).toBe("failed");
    expect(buildRecord(facts({ status: 500, error: { type: "server_error", code: null } })).error_code).toBeUndefined();
  });

  it("carries the traffic and cache fields when set", () => {
    const record = buildRecord(facts({ experiment: "chat", variant: "canary", cache: "hit", fallbacks: 1 }));
    expect(record).toMatchObject({ experiment: "chat", variant: "canary", cache: "hit", fallbacks: 1 });
  });
});

describe("decodeRate", () => {
  it("is tokens after the first over the time between the first and the last delta", () => {
    expect(decodeRate(51, 100, 600)).toBe(100);
  });

  it("is undefined for a reply delivered in one delta or with fewer than two tokens", () => {
    expect(decodeRate(20, 300, 300)).toBeUndefined();
    expect(decodeRate(1, 100, 200)).toBeUndefined();
    expect(decodeRate(10, undefined, undefined)).toBeUndefined();
  });
});

describe("keyId", () => {
  it("is a short sha256 prefix of the bearer key, never the key", () => {
    const id = keyId("Bearer sk-secret-123");
    expect(id).toMatch(/^key_[0-9a-f]{12}$/);
    expect(id).not.toContain("secret");
    expect(keyId("Bearer sk-secret-123")).toBe(id);
    expect(keyId("Bearer sk-other")).not.toBe(id);
  });

  it("is anonymous without a bearer key", () => {
    expect(keyId(undefined)).toBe("anonymous");
    expect(keyId("Basic abc")).toBe("anonymous");
    expect(keyId("Bearer   ")).toBe("anonymous");
  });
});
