// A replica's local copy of Redis entries, alone: which reads it keeps, when it serves them.
// Against a real Redis, with the invalidations Redis sends: test/integration/cache-store.test.ts.
import { describe, expect, it } from "vitest";
import { LocalCopy } from "../../src/cache/local-copy.ts";
import { cachedAnswer } from "../helpers/cache-entry.ts";

function copy(options: { maxEntries?: number; maxBytes?: number } = {}) {
  const state = { tracking: true };
  const local = new LocalCopy({
    maxEntries: options.maxEntries ?? 100,
    maxBytes: options.maxBytes ?? 1e6,
    tracking: () => state.tracking,
  });
  return { local, state };
}

const later = () => Date.now() + 60_000;

describe("LocalCopy", () => {
  it("keeps what was read, unless an invalidation arrived while it was being read", () => {
    const { local } = copy();
    const ticket = local.ticket();
    local.keep("m:1", cachedAnswer("one"), ticket, later());
    expect(local.get("m:1")?.events[0]).toMatchObject({ text: "one" });

    const stale = local.ticket();
    local.invalidate("m:other");
    local.keep("m:2", cachedAnswer("maybe stale"), stale, later());
    expect(local.get("m:2")).toBeUndefined();
  });

  it("drops a key Redis invalidates, everything on null, and a purged prefix", () => {
    const { local } = copy();
    for (const key of ["a:1", "a:2", "b:1"]) local.keep(key, cachedAnswer(key), local.ticket(), later());
    local.invalidate("a:1");
    expect(local.get("a:1")).toBeUndefined();
    expect(local.get("a:2")).toBeDefined();
    expect(local.purge("a:")).toBe(1);
    expect(local.get("a:2")).toBeUndefined();
    expect(local.get("b:1")).toBeDefined();
    local.invalidate(null);
    expect(local.get("b:1")).toBeUndefined();
  });

  it("serves and keeps nothing while invalidations cannot arrive", () => {
    const { local, state } = copy();
    local.keep("m:1", cachedAnswer("one"), local.ticket(), later());
    state.tracking = false;
    expect(local.get("m:1")).toBeUndefined();
    local.keep("m:2", cachedAnswer("two"), local.ticket(), later());
    state.tracking = true;
    expect(local.get("m:2")).toBeUndefined();
  });

  it("lets a copy live no longer than its entry in Redis, and stays within its bounds", async () => {
    const { local } = copy({ maxEntries: 2 });
    local.keep("m:expired", cachedAnswer("old"), local.ticket(), Date.now() - 1);
    expect(local.get("m:expired")).toBeUndefined();
    local.keep("m:short", cachedAnswer("short"), local.ticket(), Date.now() + 250);
    expect(local.get("m:short")).toBeDefined();
    await new Promise((r) => setTimeout(r, 350));
    expect(local.get("m:short")).toBeUndefined();

    for (const key of ["m:1", "m:2", "m:3"]) local.keep(key, cachedAnswer(key), local.ticket(), later());
    expect(local.get("m:1")).toBeUndefined();
    expect(local.get("m:3")).toBeDefined();
    const small = copy({ maxBytes: 400 }).local;
    small.keep("m:big", cachedAnswer("x".repeat(1000)), small.ticket(), later());
    expect(small.get("m:big")).toBeUndefined();
  });
});
