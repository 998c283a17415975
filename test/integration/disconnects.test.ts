// Clients that go away mid-request: streams (and a few plain requests) aborted at random
// points (while queued, before the first byte, after some chunks) must leave no sequence busy,
// no request queued and no memory behind, and each must still leave exactly one usage record.
// Heap figures are reported, not asserted beyond a generous bound: they vary run to run.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, mib, report, STRESS, seededRandom, settledHeap } from "../helpers/report.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

const N = Number(process.env.DISCONNECTS ?? (STRESS ? 1_000 : 120));
const CONCURRENCY = 8;
const SEED = Number(process.env.DISCONNECT_SEED ?? Math.floor(Math.random() * 2 ** 31));

let s: TestServer;
beforeAll(async () => {
  s = await startServer({
    config: tinyConfig("max_tokens: 48\nqueue: {max_waiting: 64, timeout_ms: 60000}"),
    logger: pino({ level: "silent" }),
  });
});
afterAll(async () => {
  await s?.close();
});

type Phase = "early" | "after-chunks" | "plain";

/** One request, abandoned at `phase`; resolves with how far it got. */
async function abandoned(phase: Phase, random: () => number): Promise<"aborted" | "finished"> {
  const abort = new AbortController();
  const stream = phase !== "plain";
  const body = JSON.stringify({
    model: "tiny",
    messages: [{ role: "user", content: `Tell me a story ${Math.floor(random() * 1e6)}` }],
    max_tokens: 8 + Math.floor(random() * 40),
    temperature: 1,
    stream,
  });
  const delay = Math.floor(random() * 40);
  const chunks = 1 + Math.floor(random() * 20);
  if (phase !== "after-chunks") setTimeout(() => abort.abort(), delay);
  try {
    const res = await fetch(`${s.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      signal: abort.signal,
    });
    const reader = res.body?.getReader();
    let seen = 0;
    for (;;) {
      const { done } = (await reader?.read()) ?? { done: true };
      if (done) return "finished";
      if (phase === "after-chunks" && ++seen >= chunks) {
        abort.abort();
        await reader?.cancel().catch(() => {});
        return "aborted";
      }
    }
  } catch (err) {
    if ((err as Error).name === "AbortError") return "aborted";
    throw err;
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${s.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{model="roundhouse-tiny"}`));
  return Number(line?.split(" ").at(-1) ?? Number.NaN);
}

describe("client disconnects", () => {
  it(`${N} requests abandoned at random points leave no busy sequence, no queue and no leak`, async () => {
    const random = seededRandom(SEED);
    console.log(`disconnects: seed ${SEED}, ${N} requests (replay: DISCONNECT_SEED=${SEED})`);
    const run = async (count: number) => {
      const outcomes = { aborted: 0, finished: 0 };
      const phases: Record<Phase, number> = { early: 0, "after-chunks": 0, plain: 0 };
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < count) {
            next++;
            const r = random();
            const phase: Phase = r < 0.45 ? "after-chunks" : r < 0.9 ? "early" : "plain";
            phases[phase]++;
            outcomes[await abandoned(phase, random)]++;
          }
        }),
      );
      return { outcomes, phases };
    };
    const idle = async () =>
      (await metric("roundhouse_busy_sequences")) === 0 && (await metric("roundhouse_queue_depth")) === 0;

    // Warm up (code paths, caches, the allocator), then measure from a settled heap.
    await run(40);
    expect(await eventually(idle, 30_000)).toBeDefined();
    const recordsBefore = await countRecords();
    // Requests the server saw begin: one aborted early enough never reaches it at all.
    let arrived = 0;
    const telemetry = s.services.telemetry;
    const begin = telemetry.begin.bind(telemetry);
    telemetry.begin = (...args: Parameters<typeof begin>) => {
      arrived++;
      return begin(...args);
    };
    const heapBefore = await settledHeap();
    const rssBefore = process.memoryUsage().rss;
    const started = performance.now();

    const { outcomes, phases } = await run(N);
    const abandonSeconds = (performance.now() - started) / 1000;
    const drainMs = await eventually(idle, 30_000);
    expect(drainMs, "busy sequences and queue back to 0").toBeDefined();
    const slots = s.services.pool.get("roundhouse-tiny")?.slots;
    expect(slots?.busy).toBe(0);
    expect(slots?.waiting).toBe(0);

    const heapAfter = await settledHeap();
    const rssAfter = process.memoryUsage().rss;
    // One usage record per request that reached the server, abandoned or not (written once it has stopped).
    telemetry.begin = begin;
    await eventually(async () => (await countRecords()) - recordsBefore >= arrived, 15_000);
    expect((await countRecords()) - recordsBefore).toBe(arrived);
    expect(arrived).toBeLessThanOrEqual(N);

    // Still serving, at full width.
    const answers = await Promise.all(
      Array.from({ length: 4 }, () =>
        s.client.chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 4 }),
      ),
    );
    for (const a of answers) expect(a.choices[0]?.finish_reason).toMatch(/stop|length/);

    const growth = heapAfter - heapBefore;
    report("disconnects", {
      seed: SEED,
      "requests abandoned": N,
      "aborted / finished first": `${outcomes.aborted} / ${outcomes.finished}`,
      "reached the server / usage records": `${arrived} / ${arrived}`,
      "abort points": `early ${phases.early}, after 1-20 chunks ${phases["after-chunks"]}, non-streaming ${phases.plain}`,
      "concurrent clients": CONCURRENCY,
      seconds: abandonSeconds,
      "busy sequences after": slots?.busy ?? -1,
      "queue after": slots?.waiting ?? -1,
      "back to idle after": `${Math.round(drainMs ?? -1)} ms`,
      "heap before / after": `${mib(heapBefore)} / ${mib(heapAfter)} (${growth >= 0 ? "+" : ""}${mib(growth)}, ${Math.round(growth / N)} B per request)`,
      "rss before / after": `${mib(rssBefore)} / ${mib(rssAfter)}`,
    });
    // Generous: a leak of a whole response per request would pass it only for tiny N.
    expect(growth).toBeLessThan(64 * 2 ** 20);
  }, 600_000);
});

async function countRecords(): Promise<number> {
  let n = 0;
  for await (const _ of s.services.telemetry.usage.query(new Date(0), new Date(Date.now() + 60_000))) n++;
  return n;
}
