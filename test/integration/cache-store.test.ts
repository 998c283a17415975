// The cache's storage against real stores: the in-process LRU and a private Redis.

import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { createClient } from "@keyv/redis";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Lookup, ResponseCache } from "../../src/cache/store.ts";
import { cachedAnswer } from "../helpers/cache-entry.ts";
import { type PrivateRedis, privateRedis } from "../helpers/redis.ts";

const settle = () => new Promise((r) => setTimeout(r, 30));

function capturingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino(
    { level: "info" },
    { write: (s: string) => lines.push(JSON.parse(s) as { level: number; msg: string }) },
  );
  return { logger, lines };
}

describe("memory store", () => {
  const options = {
    store: "memory" as const,
    ttlMs: 60_000,
    maxEntries: 3,
    maxBytes: 1_000_000,
    localCopy: false,
    timeoutMs: 50,
  };

  it("stores, finds and purges per model", async () => {
    const cache = ResponseCache.create(options, pino({ level: "silent" }));
    cache.set("a:1", cachedAnswer("one"));
    cache.set("b:1", cachedAnswer("two"));
    await settle();
    const hit = await cache.get("a:1");
    expect(hit.result).toBe("hit");
    if (hit.result === "hit") expect(hit.entry.events[0]).toMatchObject({ text: "one" });
    expect(await cache.get("a:2")).toEqual({ result: "miss" });
    expect(await cache.purge("a")).toBe(1);
    expect(await cache.get("a:1")).toEqual({ result: "miss" });
    expect((await cache.get("b:1")).result).toBe("hit");
  });

  it("is bounded in entries (least recently used go first) and in bytes", async () => {
    const cache = ResponseCache.create(options, pino({ level: "silent" }));
    for (const k of ["m:1", "m:2", "m:3", "m:4"]) cache.set(k, cachedAnswer(k));
    await settle();
    expect((await cache.get("m:1")).result).toBe("miss");
    expect((await cache.get("m:4")).result).toBe("hit");
    const small = ResponseCache.create({ ...options, maxBytes: 400 }, pino({ level: "silent" }));
    small.set("m:big", cachedAnswer("x".repeat(1000)));
    await settle();
    expect((await small.get("m:big")).result).toBe("miss");
  });

  it("expires entries after the ttl", async () => {
    const cache = ResponseCache.create({ ...options, ttlMs: 20 }, pino({ level: "silent" }));
    cache.set("m:1", cachedAnswer("x"));
    await new Promise((r) => setTimeout(r, 60));
    expect((await cache.get("m:1")).result).toBe("miss");
  });
});

describe("redis store", () => {
  let redis: PrivateRedis;
  beforeAll(async () => {
    redis = await privateRedis();
    await redis.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const options = () => ({
    store: "redis" as const,
    url: redis.url,
    ttlMs: 60_000,
    maxEntries: 100,
    maxBytes: 1e6,
    localCopy: true,
    timeoutMs: 50,
  });

  /** GET commands Redis has served so far. */
  async function redisGets(): Promise<number> {
    const client = createClient({ url: redis.url });
    await client.connect();
    const stats = await client.info("commandstats");
    await client.quit();
    return Number(/cmdstat_get:calls=(\d+)/.exec(stats)?.[1] ?? 0);
  }

  async function eventually(check: () => Promise<boolean>): Promise<boolean> {
    for (let i = 0; i < 100; i++) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  /**
   * Waits until `cache` is connected: a write sent while connecting is dropped, by design, and
   * connecting (an ACL login, the RESP3 handshake) can outlast a lookup's 50 ms on a busy
   * machine, which then answers "error" rather than "miss".
   */
  async function connected(cache: ResponseCache): Promise<void> {
    expect(await eventually(async () => (await cache.get("warm:up")).result === "miss")).toBe(true);
  }

  /** Two caches on the one Redis, connected. */
  async function replicas(): Promise<[ResponseCache, ResponseCache]> {
    const both = [0, 1].map(() => ResponseCache.create(options(), pino({ level: "silent" })));
    for (const cache of both) await connected(cache);
    return both as [ResponseCache, ResponseCache];
  }

  const textOf = (lookup: Lookup) => (lookup.result === "hit" ? lookup.entry.events[0] : undefined);

  it("shares entries between two instances (replicas), and purges per model", async () => {
    const [a, b] = await replicas();
    a.set("m:1", cachedAnswer("shared"));
    a.set("n:1", cachedAnswer("other"));
    await settle();
    const hit = await b.get("m:1");
    expect(hit.result).toBe("hit");
    if (hit.result === "hit") expect(hit.entry.events[0]).toMatchObject({ text: "shared" });
    expect(await b.purge("m")).toBe(1);
    expect((await a.get("m:1")).result).toBe("miss");
    expect((await a.get("n:1")).result).toBe("hit");
    await a.close();
    await b.close();
  });

  it("serves a replica's repeated hits from its local copy, without asking Redis", async () => {
    const [a, b] = await replicas();
    a.set("copy:1", cachedAnswer("shared"));
    await settle();
    const before = await redisGets();
    for (let i = 0; i < 5; i++) expect(textOf(await b.get("copy:1"))).toMatchObject({ text: "shared" });
    expect(await redisGets()).toBe(before + 1);
    // Without the copy, each hit is a round trip.
    const plain = ResponseCache.create({ ...options(), localCopy: false }, pino({ level: "silent" }));
    for (let i = 0; i < 3; i++) expect((await plain.get("copy:1")).result).toBe("hit");
    expect(await redisGets()).toBe(before + 4);
    await Promise.all([a.close(), b.close(), plain.close()]);
  });

  it("drops a replica's copies when another replica overwrites or purges them, or Redis is flushed", async () => {
    const [a, b] = await replicas();
    a.set("over:1", cachedAnswer("first"));
    a.set("gone:1", cachedAnswer("purged"));
    a.set("flush:1", cachedAnswer("flushed"));
    await settle();
    for (const key of ["over:1", "gone:1", "flush:1"]) expect((await b.get(key)).result).toBe("hit");

    a.set("over:1", cachedAnswer("second"));
    expect(await eventually(async () => (textOf(await b.get("over:1")) as { text?: string })?.text === "second")).toBe(
      true,
    );
    expect(await a.purge("gone")).toBe(1);
    expect(await eventually(async () => (await b.get("gone:1")).result === "miss")).toBe(true);
    const client = createClient({ url: redis.url });
    await client.connect();
    await client.flushAll();
    await client.quit();
    expect(await eventually(async () => (await b.get("flush:1")).result === "miss")).toBe(true);
    await Promise.all([a.close(), b.close()]);
  });

  it("tells the operator what to change when Redis is too old for the local copy", async () => {
    // Redis before 6 refuses the RESP3 handshake; this server refuses it the same way.
    const old = createServer((socket) =>
      socket.on("data", () => socket.write("-ERR unknown command 'HELLO', with args beginning with: '3'\r\n")),
    );
    await new Promise<void>((resolve) => old.listen(0, "127.0.0.1", resolve));
    const address = old.address() as AddressInfo;
    const { logger, lines } = capturingLogger();
    const cache = ResponseCache.create({ ...options(), url: `redis://127.0.0.1:${address.port}` }, logger);
    expect((await cache.get("m:1")).result).toBe("error");
    expect(await eventually(async () => lines.some((l) => l.msg.includes("local_copy: false")))).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(lines.filter((l) => l.msg.includes("local_copy: false")).length).toBe(1);
    await cache.close();
    await new Promise((r) => old.close(r));
  });

  it("says the same when an ACL denies the client tracking the local copy needs", async () => {
    const admin = createClient({ url: redis.url });
    await admin.connect();
    await admin.sendCommand(["ACL", "SETUSER", "untracked", "on", ">secret", "~*", "+@all", "-client"]);
    await admin.quit();
    const { logger, lines } = capturingLogger();
    const url = redis.url.replace("redis://", "redis://untracked:secret@");
    const cache = ResponseCache.create({ ...options(), url }, logger);
    expect((await cache.get("m:1")).result).toBe("error");
    expect(await eventually(async () => lines.some((l) => l.msg.includes("local_copy: false")))).toBe(true);
    // Without the copy the same user is served.
    const plain = ResponseCache.create({ ...options(), url, localCopy: false }, pino({ level: "silent" }));
    await connected(plain);
    plain.set("acl:1", cachedAnswer("served"));
    expect(await eventually(async () => (await plain.get("acl:1")).result === "hit")).toBe(true);
    await Promise.all([cache.close(), plain.close()]);
  });

  it("serves misses quickly while Redis is down, warns once, and resumes when it is back", async () => {
    const { logger, lines } = capturingLogger();
    const cache = ResponseCache.create(options(), logger);
    await connected(cache);
    cache.set("m:1", cachedAnswer("before"));
    await settle();
    expect((await cache.get("m:1")).result).toBe("hit");

    // Connecting may itself outlast the 50 ms a lookup waits (a warning, then "back"): count from here.
    const beforeOutage = lines.length;
    await redis.stop();
    // Until the client sees its socket close, this replica's copy still answers, as Redis would
    // have a moment earlier; from then on, lookups fail fast.
    expect(await eventually(async () => (await cache.get("m:1")).result === "error")).toBe(true);
    for (let i = 0; i < 5; i++) {
      const started = performance.now();
      expect((await cache.get("m:1")).result).toBe("error");
      expect(performance.now() - started).toBeLessThan(1000);
    }
    expect(lines.slice(beforeOutage).filter((l) => l.msg.includes("unavailable")).length).toBe(1);

    await redis.start();
    let result = "error";
    for (let i = 0; i < 60 && result !== "miss"; i++) {
      await new Promise((r) => setTimeout(r, 100));
      result = (await cache.get("m:1")).result;
    }
    // The restarted server kept nothing (no persistence): a miss, not an error.
    expect(result).toBe("miss");
    expect(lines.some((l) => l.msg.includes("back"))).toBe(true);
    cache.set("m:2", cachedAnswer("after"));
    await settle();
    expect((await cache.get("m:2")).result).toBe("hit");
    await cache.close();
  });
});
