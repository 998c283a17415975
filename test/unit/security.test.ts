// Bearer keys and the rate-limit decision: pure functions, checked exhaustively or by property.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ApiKeys, type Area, authorize, bearerToken, type Credential } from "../../src/security/api-keys.ts";
import { decideRateLimit, type RateUsage, WINDOW_MS, windowAt } from "../../src/security/rate-limit.ts";
import { RateLimiter } from "../../src/security/rate-limiter.ts";
import { MemoryRateCounters } from "../../src/storage/rate-counters.ts";
import { keyId } from "../../src/telemetry/record.ts";

describe("ApiKeys", () => {
  const keys = new ApiKeys(["sk-one", "sk-two"], "sk-admin");

  it("tells API keys, the admin key, strangers and no key apart", () => {
    expect(keys.identify("Bearer sk-two")).toBe("api");
    expect(keys.identify("bearer   sk-one ")).toBe("api");
    expect(keys.identify("Bearer sk-admin")).toBe("admin");
    expect(keys.identify("Bearer sk-one2")).toBe("unknown");
    expect(keys.identify("Bearer sk-on")).toBe("unknown");
    expect(keys.identify("Basic sk-one")).toBe("none");
    expect(keys.identify("Bearer ")).toBe("none");
    expect(keys.identify(undefined)).toBe("none");
  });

  it("names a key by one id however the scheme is spelled, so its limits cannot be dodged", () => {
    expect(keyId("bearer sk-one")).toBe(keyId("Bearer sk-one"));
    expect(keyId("BEARER\tsk-one ")).toBe(keyId("Bearer sk-one"));
    expect(keyId("Bearer sk-one")).toMatch(/^key_[0-9a-f]{12}$/);
    expect(keyId("Basic sk-one")).toBe("anonymous");
  });

  it("reads only the Bearer scheme", () => {
    expect(bearerToken("Bearer abc")).toBe("abc");
    expect(bearerToken("BEARER\tabc")).toBe("abc");
    expect(bearerToken("Bearerabc")).toBeUndefined();
    expect(bearerToken("Token abc")).toBeUndefined();
  });

  it("keeps no key in a form that serializes back", () => {
    expect(JSON.stringify(keys)).not.toMatch(/sk-/);
    expect(JSON.stringify(Object.values(keys))).not.toMatch(/sk-/);
  });

  it("is open where no key is configured", () => {
    expect(new ApiKeys([], undefined).configured).toEqual({ api: false, admin: false });
    expect(new ApiKeys(["", "k"], "").configured).toEqual({ api: true, admin: false });
  });
});

describe("authorize", () => {
  const credentials: Credential[] = ["none", "api", "admin", "unknown"];
  const areas: Area[] = ["api", "admin"];
  const both = { api: true, admin: true };

  it("opens an area to its own key, and both to the admin key", () => {
    for (const area of areas) {
      for (const credential of credentials) {
        const refused = authorize(area, credential, both);
        if (credential === area || credential === "admin") expect(refused).toBeUndefined();
        else
          expect(refused?.status, `${credential} on ${area}`).toBe(
            area === "admin" && credential === "api" ? 403 : 401,
          );
      }
    }
  });

  it("names what is wrong", () => {
    expect(authorize("api", "none", both)?.code).toBe("missing_api_key");
    expect(authorize("api", "unknown", both)?.code).toBe("invalid_api_key");
    expect(authorize("admin", "api", both)?.code).toBe("permission_denied");
  });

  it("lets everyone into an area without a key", () => {
    for (const credential of credentials) {
      expect(authorize("api", credential, { api: false, admin: true })).toBeUndefined();
      expect(authorize("admin", credential, { api: true, admin: false })).toBeUndefined();
    }
  });
});

const usage = (requests: [number, number], tokens: [number, number] = [0, 0]): RateUsage => ({
  requests: { previous: requests[0], current: requests[1] },
  tokens: { previous: tokens[0], current: tokens[1] },
});

describe("decideRateLimit", () => {
  it("allows up to the limit of requests, this one included", () => {
    expect(decideRateLimit({ requestsPerMinute: 3 }, usage([0, 3]), 0.5).allowed).toBe(true);
    const over = decideRateLimit({ requestsPerMinute: 3 }, usage([0, 4]), 0.5);
    expect(over).toMatchObject({ allowed: false, kind: "requests", limit: 3, used: 3 });
  });

  it("weighs the previous minute by how much of it is still in the last 60 s", () => {
    // 10 last minute, a quarter into this one: 7.5 of them still count; three quarters in, 2.5.
    expect(decideRateLimit({ requestsPerMinute: 10 }, usage([10, 3]), 0.25).allowed).toBe(false);
    expect(decideRateLimit({ requestsPerMinute: 10 }, usage([10, 3]), 0.75).allowed).toBe(true);
  });

  it("refuses once the minute's tokens are spent", () => {
    expect(decideRateLimit({ tokensPerMinute: 100 }, usage([0, 1], [0, 99]), 0).allowed).toBe(true);
    expect(decideRateLimit({ tokensPerMinute: 100 }, usage([0, 1], [0, 100]), 0)).toMatchObject({
      allowed: false,
      kind: "tokens",
    });
  });

  it("has no opinion without limits", () => {
    expect(decideRateLimit({}, usage([1e9, 1e9], [1e9, 1e9]), 0.1).allowed).toBe(true);
  });

  it("tells a client to wait exactly long enough: waiting it out is allowed, a second less is not", () => {
    const counts = fc.record({
      limit: fc.integer({ min: 1, max: 50 }),
      previous: fc.integer({ min: 0, max: 100 }),
      current: fc.integer({ min: 1, max: 100 }),
      fraction: fc.double({ min: 0, max: 0.999, noNaN: true }),
    });
    fc.assert(
      fc.property(counts, ({ limit, previous, current, fraction }) => {
        const decision = decideRateLimit({ requestsPerMinute: limit }, usage([previous, current]), fraction);
        if (decision.allowed) return;
        expect(decision.retryAfterSeconds).toBeGreaterThanOrEqual(1);
        // Replays the counters `retryAfterSeconds` later with no traffic meanwhile, the retry counted.
        const later = (seconds: number) => {
          const at = fraction * WINDOW_MS + seconds * 1000;
          const passed = Math.floor(at / WINDOW_MS);
          const f = (at % WINDOW_MS) / WINDOW_MS;
          const windows = passed === 0 ? [previous, current - 1] : passed === 1 ? [current - 1, 0] : [0, 0];
          return decideRateLimit({ requestsPerMinute: limit }, usage([windows[0] ?? 0, (windows[1] ?? 0) + 1]), f);
        };
        expect(later(decision.retryAfterSeconds).allowed).toBe(true);
        if (decision.retryAfterSeconds > 1) expect(later(decision.retryAfterSeconds - 1.001).allowed).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it("places an instant in its minute", () => {
    expect(windowAt(90_000)).toEqual({ index: 1, fraction: 0.5 });
  });
});

describe("RateLimiter", () => {
  it("counts concurrent requests one by one, refuses the excess in OpenAI's shape, and does not count refusals", async () => {
    let now = 30_000;
    const limiter = new RateLimiter(
      { default: undefined, keys: new Map([["key_aaaaaaaaaaaa", { requestsPerMinute: 2 }]]) },
      new MemoryRateCounters(),
      () => now,
    );
    const answers = await Promise.all(Array.from({ length: 5 }, () => limiter.admit("key_aaaaaaaaaaaa")));
    expect(answers.filter((a) => a === undefined)).toHaveLength(2);
    const refused = answers.find((a) => a !== undefined);
    expect(refused).toMatchObject({ status: 429, code: "rate_limit_exceeded", type: "requests" });
    expect(refused?.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(await limiter.admit("key_bbbbbbbbbbbb")).toBeUndefined();
    // Two minutes on, the refused ones left no trace.
    now += 2 * WINDOW_MS;
    expect(await limiter.admit("key_aaaaaaaaaaaa")).toBeUndefined();
    expect(await limiter.admit("key_aaaaaaaaaaaa")).toBeUndefined();
    expect(await limiter.admit("key_aaaaaaaaaaaa")).toBeDefined();
  });

  it("refuses by tokens once finished requests spent them", async () => {
    const limiter = new RateLimiter(
      { default: { tokensPerMinute: 50 }, keys: new Map() },
      new MemoryRateCounters(),
      () => 0,
    );
    expect(await limiter.admit("anonymous")).toBeUndefined();
    await limiter.used("anonymous", 60);
    expect(await limiter.admit("anonymous")).toMatchObject({ status: 429, type: "tokens" });
  });
});
