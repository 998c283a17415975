import { describe, expect, it } from "vitest";
import { DEFAULT_RANGE_MS, parseInstant, usageRange } from "../../src/telemetry/time-range.ts";

describe("parseInstant", () => {
  it.each([
    ["1749715200", "2025-06-12T08:00:00.000Z"],
    ["1749715200.5", "2025-06-12T08:00:00.500Z"],
    ["2025-06-12T08:00:00Z", "2025-06-12T08:00:00.000Z"],
    ["2025-06-12T10:00:00+02:00", "2025-06-12T08:00:00.000Z"],
    ["2025-06-12T08:00", "2025-06-12T08:00:00.000Z"],
    ["2025-06-12 08:00:00", "2025-06-12T08:00:00.000Z"],
    ["2025-06-12", "2025-06-12T00:00:00.000Z"],
  ])("reads %s", (text, iso) => {
    expect(parseInstant(text)?.toISOString()).toBe(iso);
  });

  // "8640000000000001": unix seconds past the last instant a Date can hold (found by the fuzz suite).
  it.each(["yesterday", "", "12/06/2025", "2025-13-45", "-5", "8640000000000001", "1e400"])("refuses %j", (text) => {
    expect(parseInstant(text)).toBeUndefined();
  });
});

describe("usageRange", () => {
  const now = new Date("2025-06-12T08:00:00Z");

  it("defaults to the last 24 hours", () => {
    const range = usageRange(undefined, undefined, now);
    expect(range).toEqual({ ok: true, since: new Date(now.getTime() - DEFAULT_RANGE_MS), until: now });
  });

  it("counts 24 hours back from an explicit until", () => {
    const range = usageRange(undefined, "2025-06-10T00:00:00Z", now);
    expect(range.ok && range.since.toISOString()).toBe("2025-06-09T00:00:00.000Z");
  });

  it("names the parameter that is wrong", () => {
    expect(usageRange("soon", undefined, now)).toMatchObject({ ok: false, param: "since" });
    expect(usageRange(undefined, "later", now)).toMatchObject({ ok: false, param: "until" });
    expect(usageRange("2025-06-12", "2025-06-11", now)).toMatchObject({ ok: false, param: "since" });
  });
});
