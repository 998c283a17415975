// The usage log in Redis: two apps on one private Redis see each other's traffic in
// /admin/usage, the records outlive the app that wrote them, and while Redis is down requests
// are still served, their records wait in a bounded buffer (the oldest dropped and counted,
// one warning per outage) and reach the stream when it is back.
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.ts";
import type { UsageRecord } from "../../src/telemetry/record.ts";
import { RedisUsageLog } from "../../src/telemetry/redis-usage-log.ts";
import type { UsageGroup } from "../../src/telemetry/summary.ts";
import { brokenModelFile } from "../helpers/broken-model.ts";
import { type PrivateRedis, privateRedis } from "../helpers/redis.ts";
import { REPO, startServer, type TestServer, tinyConfig } from "../helpers/server.ts";
import { usersOn } from "../helpers/sticky.ts";
import { usageRecord } from "../helpers/usage-record.ts";

let redis: PrivateRedis;
beforeAll(async () => {
  redis = await privateRedis();
  await redis.start();
});
afterAll(async () => {
  await redis?.stop();
});

const record = (id: string, startedAt = new Date()): UsageRecord =>
  usageRecord({ request_id: id, started_at: startedAt.toISOString(), served_model: "synthetic" });

/** A logger whose lines the test can read. */
function capturingLogger(): { logger: pino.Logger; lines: () => { level: number; msg: string }[] } {
  const out: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim() !== "") out.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: "info" }, sink), lines: () => out };
}

async function ids(log: RedisUsageLog, since = new Date(0), until = new Date(Date.now() + 60_000)): Promise<string[]> {
  const out: string[] = [];
  for await (const r of log.query(since, until)) out.push(r.request_id);
  return out;
}

describe("RedisUsageLog", () => {
  it("buffers through an outage, drops the oldest beyond its bound, warns once, and writes the rest when Redis is back", async () => {
    const { logger, lines } = capturingLogger();
    let dropped = 0;
    const log = new RedisUsageLog({
      url: redis.url,
      logger,
      maxRecords: 10_000,
      maxBuffered: 5,
      replica: "outage-test",
      retryMs: 50,
      dropped: (n) => {
        dropped += n;
      },
    });
    log.append(record("before"));
    expect(await ids(log)).toContain("before");

    await redis.stop();
    for (let i = 0; i < 8; i++) {
      log.append(record(`during-${i}`));
      // Each flush is a failed attempt; the outage is still one warning.
      await log.flush();
    }
    expect(dropped).toBe(3);
    const warnings = lines().filter((l) => l.level === 40 && l.msg.includes("usage log (redis) unavailable"));
    expect(warnings).toHaveLength(1);
    // A query while Redis is down fails as an OpenAI-style 503 rather than answering with part of the log.
    await expect(ids(log)).rejects.toMatchObject({ status: 503, code: "usage_log_unavailable" });

    await redis.start();
    // The retry timer writes the buffer once the client has reconnected.
    const deadline = Date.now() + 15_000;
    let found: string[] = [];
    while (Date.now() < deadline) {
      found = await ids(log).catch(() => []);
      if (found.length >= 5) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    // Redis came back empty (no persistence here): what is there is exactly the newest five.
    expect(found.sort()).toEqual(["during-3", "during-4", "during-5", "during-6", "during-7"]);
    expect(lines().some((l) => l.msg.includes("usage log (redis) is back"))).toBe(true);
    await log.close();
  });

  it("queries by the records' start time, not by when they reached the stream", async () => {
    const log = new RedisUsageLog({
      url: redis.url,
      logger: pino({ level: "silent" }),
      maxRecords: 10_000,
      maxBuffered: 100,
      replica: "range-test",
    });
    const now = Date.now();
    // Written now, started ten minutes ago (a long request, or one buffered through an outage).
    log.append(record("ten-minutes-ago", new Date(now - 600_000)));
    log.append(record("just-now", new Date(now)));
    expect(await ids(log, new Date(now - 660_000), new Date(now - 540_000))).toEqual(["ten-minutes-ago"]);
    expect(await ids(log, new Date(now - 1000), new Date(now + 1000))).toContain("just-now");
    expect(await ids(log, new Date(now - 1000), new Date(now + 1000))).not.toContain("ten-minutes-ago");
    await log.close();
  });

  it("lets a replica follow the records other replicas append, not its own", async () => {
    const options = { url: redis.url, logger: pino({ level: "silent" }), maxRecords: 10_000, maxBuffered: 100 };
    const a = new RedisUsageLog({ ...options, replica: "follow-a" });
    const b = new RedisUsageLog({ ...options, replica: "follow-b" });
    const seenByA: string[] = [];
    a.follow((r) => seenByA.push(r.request_id), 20);
    // Following starts after the stream's current end: wait until the first read has happened.
    a.append(record("from-a"));
    await a.flush();
    const deadline = Date.now() + 10_000;
    let n = 0;
    while (!seenByA.includes("from-b-1") && Date.now() < deadline) {
      b.append(record(`from-b-${n++}`));
      await b.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seenByA).toContain("from-b-1");
    expect(seenByA).not.toContain("from-a");
    await a.close();
    await b.close();
  });
});

describe("usage_log in models.yaml", () => {
  const parse = (global: string) => parseConfig(tinyConfig("", global), `${REPO}/models.yaml`).usage_log;

  it("defaults to Redis when the cache or the experiment state is in Redis", () => {
    expect(parse("").store).toBe("file");
    expect(parse("cache: {store: redis, url: redis://cache:6379}")).toMatchObject({
      store: "redis",
      url: "redis://cache:6379",
    });
    expect(parse("experiment_state: {store: redis, url: redis://state:6379}")).toMatchObject({
      store: "redis",
      url: "redis://state:6379",
    });
    expect(parse("cache: {store: redis}\nusage_log: {store: file}").store).toBe("file");
    expect(parse("usage_log: {store: redis, url: redis://usage:6379, max_records: 5000}")).toMatchObject({
      store: "redis",
      url: "redis://usage:6379",
      maxRecords: 5000,
    });
  });
});

describe("two apps sharing one Redis usage log", () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  const start = async () => {
    const s = await startServer({ config: tinyConfig("", `usage_log: {store: redis, url: ${redis.url}}`) });
    servers.push(s);
    return s;
  };

  async function chat(s: TestServer, content: string): Promise<number> {
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content }], max_tokens: 2 }),
    });
    await res.arrayBuffer();
    return res.status;
  }

  /** Undefined while the app's Redis connection is down (503). */
  async function requestsSeenBy(s: TestServer, since: Date): Promise<number | undefined> {
    const res = await fetch(`${s.url}/admin/usage?group_by=model&since=${since.toISOString()}`);
    if (res.status === 503) return undefined;
    expect(res.status).toBe(200);
    const body = (await res.json()) as { data: UsageGroup[] };
    // The stream also holds the synthetic records of the tests above.
    return body.data.find((g) => g.group === "roundhouse-tiny")?.requests ?? 0;
  }

  /**
   * Records reach the stream a batch interval after the response (and after a reconnect, when
   * Redis was down): wait for the count to get there.
   */
  async function waitForRequests(s: TestServer, since: Date, count: number): Promise<number | undefined> {
    const deadline = Date.now() + 15_000;
    let n = await requestsSeenBy(s, since);
    while ((n ?? 0) < count && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
      n = await requestsSeenBy(s, since);
    }
    return n;
  }

  it("shows both apps' traffic on either, survives a restart, and serves requests while Redis is down", async () => {
    const since = new Date(Date.now() - 1000);
    const a = await start();
    const b = await start();
    expect(a.services.telemetry.usage).toBeInstanceOf(RedisUsageLog);
    for (let i = 0; i < 2; i++) expect(await chat(a, `a${i}`)).toBe(200);
    for (let i = 0; i < 3; i++) expect(await chat(b, `b${i}`)).toBe(200);
    expect(await waitForRequests(a, since, 5)).toBe(5);
    expect(await waitForRequests(b, since, 5)).toBe(5);

    // A new app with an empty DATA_DIR reads the same records: they live in Redis, not on A's disk.
    await a.close();
    servers.splice(servers.indexOf(a), 1);
    const a2 = await start();
    expect(await requestsSeenBy(a2, since)).toBe(5);

    await redis.stop();
    const outageStart = new Date();
    for (let i = 0; i < 3; i++) expect(await chat(a2, `down${i}`)).toBe(200);
    // Usage cannot be read meanwhile: an OpenAI error envelope, not a hang or a partial answer.
    const down = await fetch(`${a2.url}/admin/usage`);
    expect(down.status).toBe(503);
    expect(((await down.json()) as { error: { code: string } }).error.code).toBe("usage_log_unavailable");

    await redis.start();
    // The buffered records reach the (restarted, empty) stream; nothing was dropped.
    expect(await waitForRequests(a2, new Date(outageStart.getTime() - 1000), 3)).toBe(3);
    const metrics = await (await fetch(`${a2.url}/metrics`)).text();
    expect(metrics).toMatch(/^roundhouse_usage_records_dropped_total 0$/m);
  });
});

describe("rollback rules over two apps' traffic", () => {
  const servers: TestServer[] = [];
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it("trip on min_requests counted across both apps, though neither served that many", async () => {
    const config = `${tinyConfig()}
  - id: broken
    provider: llama
    path: ${brokenModelFile()}
    threads: 1
experiments:
  - name: split
    variants:
      - {name: control, model: tiny, weight: 1}
      - name: canary
        model: broken
        weight: 1
        canary: true
        fallback: false
        rollback:
          - {metric: error_rate, max: 0.5, min_requests: 6, window: 5m}
experiment_state: {store: redis, url: "${redis.url}", poll: 100ms}`;
    // Users the split sends to the canary: forced requests would not count toward its rollback.
    const canaryUsers = usersOn(
      "split",
      [
        { name: "control", weight: 1 },
        { name: "canary", weight: 1 },
      ],
      "canary",
      6,
    );
    const a = await startServer({ config });
    servers.push(a);
    const b = await startServer({ config });
    servers.push(b);
    const state = async (s: TestServer) => {
      const res = await fetch(`${s.url}/admin/experiments/split`);
      const body = (await res.json()) as { variants: { name: string; state: string }[] };
      return body.variants.find((v) => v.name === "canary")?.state;
    };
    const failCanary = async (s: TestServer) => {
      const res = await fetch(`${s.baseURL}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": canaryUsers.pop() ?? "" },
        body: JSON.stringify({ model: "split", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 }),
      });
      await res.arrayBuffer();
      return res.status;
    };
    // Three failures on each app: below min_requests for either alone.
    for (let i = 0; i < 3; i++) expect(await failCanary(a)).toBe(503);
    expect(await state(a)).toBe("active");
    for (let i = 0; i < 3; i++) expect(await failCanary(b)).toBe(503);
    const deadline = Date.now() + 15_000;
    while ((await state(a)) !== "rolled_back" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(await state(a)).toBe("rolled_back");
    const events = (
      (await (await fetch(`${b.url}/admin/experiments/split`)).json()) as {
        events: { type: string; requests: { variant: number } }[];
      }
    ).events.filter((e) => e.type === "rollback");
    expect(events).toHaveLength(1);
    expect(events[0]?.requests.variant).toBe(6);
  });
});
