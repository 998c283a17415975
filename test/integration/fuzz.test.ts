// Property-based fuzzing of every route over real HTTP on loopback: generated malformed and
// hostile requests (test/helpers/fuzz.ts) must never get a 5xx, never hang, never crash the
// server, and every refusal must be OpenAI's error envelope. Afterwards the server is still
// healthy and holds no sequence. The seed is printed; FUZZ_SEED (and FUZZ_PATH, from a
// failure's report) replays a run, FUZZ_RUNS sets its size.
import { connect } from "node:net";
import fc from "fast-check";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FakeUpstream, startFakeUpstream } from "../helpers/fake-upstream.ts";
import { describeRequest, type FuzzContext, type FuzzRequest, fuzzRequest } from "../helpers/fuzz.ts";
import { envelopeOf, type RawResponse, rawRequest } from "../helpers/http.ts";
import { report, STRESS } from "../helpers/report.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

// CI sends a few thousand (about 15 s on two cores); npm run test:stress sends 25,000.
const RUNS = Number(process.env.FUZZ_RUNS ?? (STRESS ? 25_000 : 3_000));
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const BATCH = 6;
const API_KEY = "sk-fuzz-user";
const ADMIN_KEY = "sk-fuzz-admin";

// max_tokens 2 on the local model: whatever gets through to it generates at most two tokens.
// An upstream model too (a fake OpenAI-compatible server), so hostile requests are forwarded
// as well. The fine-tuning window is longer than any upload here, so no job ever trains. Rate
// limits high enough never to trip, so their code runs on every request.
const config = (upstream: string) => `${tinyConfig("max_tokens: 2\nfinetune:\n  context: 8192")}
  - id: remote
    provider: openai
    base_url: ${upstream}
    timeout: 5s
    retries: 0
experiments:
  - name: ab
    variants:
      - {name: a, model: tiny, weight: 1}
      - {name: b, model: roundhouse-tiny, weight: 1, canary: true}
limits:
  max_body: 1MiB
  max_upload: 256KiB
rate_limits:
  default: { requests_per_minute: 100000000, tokens_per_minute: 100000000 }
`;

let s: TestServer;
let up: FakeUpstream;
let ctx: FuzzContext;

beforeAll(async () => {
  up = await startFakeUpstream();
  s = await startServer({
    config: config(up.baseUrl),
    apiKeys: [API_KEY],
    adminApiKey: ADMIN_KEY,
    logger: pino({ level: "silent" }),
  });
  const upload = async (purpose: string, text: string) => {
    const form = new FormData();
    form.set("purpose", purpose);
    form.set("file", new File([text], "seed.jsonl"));
    const res = await fetch(`${s.baseURL}/files`, {
      method: "POST",
      body: form,
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    return ((await res.json()) as { id: string }).id;
  };
  const line = JSON.stringify({
    messages: [
      { role: "user", content: "Hi" },
      { role: "assistant", content: "Hello" },
    ],
  });
  const trainFile = await upload("fine-tune", `${line}\n${line}\n`);
  const batchFile = await upload("batch", "anything");
  const job = await fetch(`${s.baseURL}/fine_tuning/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${API_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ model: "tiny", training_file: trainFile }),
  });
  const jobId = ((await job.json()) as { id: string }).id;
  ctx = {
    apiKey: API_KEY,
    adminKey: ADMIN_KEY,
    fileIds: [trainFile, batchFile],
    jobIds: [jobId],
    models: ["tiny", "roundhouse-tiny", "remote"],
    experiment: "ab",
  };
});
afterAll(async () => {
  await s?.close();
  await up?.close();
});

/** Writes the bytes, half-closes, and reads whatever comes back until the server closes. */
function sendRaw(url: string, bytes: Buffer): Promise<Buffer> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: hostname, port: Number(port) }, () => {
      socket.end(bytes);
    });
    socket.setTimeout(20_000, () => socket.destroy(new Error("no answer in time")));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", () => resolve(Buffer.concat(chunks)));
    // A reset after the server answered and closed is normal for garbage input.
    socket.on("error", (err: NodeJS.ErrnoException) => (err.code === "ECONNRESET" ? undefined : reject(err)));
  });
}

/** Status and body of the first response in raw bytes (chunked bodies decoded). */
function parseRaw(bytes: Buffer): RawResponse | undefined {
  const text = bytes.toString("utf8");
  const end = text.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...headerLines] = text.slice(0, end).split("\r\n");
  const status = Number(statusLine?.split(" ")[1]);
  const headers: Record<string, string> = {};
  for (const l of headerLines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  let body = text.slice(end + 4);
  if (headers["transfer-encoding"] === "chunked") {
    let out = "";
    let rest = body;
    for (;;) {
      const nl = rest.indexOf("\r\n");
      const size = Number.parseInt(rest.slice(0, nl), 16);
      if (!(size > 0)) break;
      out += rest.slice(nl + 2, nl + 2 + size);
      rest = rest.slice(nl + 2 + size + 2);
    }
    body = out;
  } else if (headers["content-length"] !== undefined) {
    body = body.slice(0, Number(headers["content-length"]));
  }
  return { status, headers, body };
}

/** What must hold of any answer: no 5xx; refusals in the envelope; 2xx bodies well formed. */
function checkAnswer(res: RawResponse, method: string): void {
  expect(res.status, "status").toBeGreaterThanOrEqual(200);
  expect(res.status, "status").toBeLessThan(500);
  if (method === "HEAD" || res.status === 204) return;
  const type = String(res.headers["content-type"] ?? "");
  if (res.status >= 300) {
    envelopeOf(res.body);
    return;
  }
  if (type.startsWith("text/event-stream")) {
    const events = res.body.split("\n\n").filter((e) => e.trim() !== "");
    expect(events.at(-1)?.trim(), "a stream ends with [DONE] or an error event").toMatch(/^data: (\[DONE\]|\{"error")/);
    for (const e of events) {
      const data = e.replace(/^data: /, "");
      if (data === "[DONE]") continue;
      const parsed = JSON.parse(data) as { error?: unknown };
      if (parsed.error !== undefined) envelopeOf(data);
    }
  } else if (type.startsWith("application/json")) {
    JSON.parse(res.body);
  }
}

describe("fuzzing every route", () => {
  it(`answers ${RUNS} hostile requests without a 5xx, a hang or a crash, every refusal in OpenAI's envelope`, async () => {
    const tally = new Map<string, Map<number, number>>();
    const count = (route: string, status: number) => {
      const byStatus = tally.get(route) ?? new Map<number, number>();
      byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
      tally.set(route, byStatus);
    };
    let sent = 0;
    let reachedModel = 0;
    const started = performance.now();
    console.log(
      `fuzz: seed ${SEED}, ${RUNS} requests (replay: FUZZ_SEED=${SEED} npx vitest run test/integration/fuzz.test.ts)`,
    );
    let slowest = { ms: 0, route: "" };
    const send = async (r: FuzzRequest) => {
      sent++;
      const t0 = performance.now();
      await answerOf(r);
      const ms = performance.now() - t0;
      if (ms > slowest.ms) slowest = { ms, route: r.route };
    };
    const answerOf = async (r: FuzzRequest) => {
      if (r.kind === "raw") {
        const res = parseRaw(await sendRaw(s.url, r.bytes));
        count(r.route, res?.status ?? 0);
        // Bytes that are not HTTP may get no answer at all; an answer must be a proper one.
        if (res) checkAnswer(res, "GET");
        return;
      }
      const res = await rawRequest(s.url, {
        method: r.method,
        path: r.path,
        headers: r.headers,
        ...(r.body === undefined ? {} : { body: r.body }),
        timeoutMs: 30_000,
      });
      count(r.route, res.status);
      if (r.route === "chat" && res.status === 200) reachedModel++;
      checkAnswer(res, r.method);
    };
    // A few requests at a time, as clients do: the server answers one while another generates.
    await fc.assert(
      fc.asyncProperty(fc.array(fuzzRequest(ctx), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
        await Promise.all(
          batch.map(async (r) => {
            try {
              await send(r);
            } catch (err) {
              throw new Error(`${(err as Error).message}\n  request: ${describeRequest(r)}`);
            }
          }),
        );
      }),
      {
        seed: SEED,
        numRuns: Math.ceil(RUNS / BATCH),
        ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}),
        // Shrinking replays requests against a live server: a few hundred tries find a small case.
        endOnFailure: false,
        maxSkipsPerRun: 0,
      },
    );
    const seconds = (performance.now() - started) / 1000;

    // Still healthy, idle and serving.
    expect((await fetch(`${s.url}/healthz`)).status).toBe(200);
    const loaded = s.services.pool.get("roundhouse-tiny");
    expect(loaded?.slots.busy ?? 0).toBe(0);
    expect(loaded?.slots.waiting ?? 0).toBe(0);
    const answer = await s.client.chat.completions.create(
      { model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 2 },
      { headers: { authorization: `Bearer ${API_KEY}` } },
    );
    expect(answer.choices[0]?.finish_reason).toMatch(/stop|length/);

    expect(up.requests.length).toBeGreaterThan(0);
    const byRoute: Record<string, string> = {};
    for (const [route, statuses] of [...tally].sort()) {
      byRoute[route] = [...statuses]
        .sort(([a], [b]) => a - b)
        .map(([st, n]) => `${st}×${n}`)
        .join(" ");
    }
    report("fuzz", {
      seed: SEED,
      "requests sent": sent,
      "reached a model (chat 200)": reachedModel,
      "forwarded to the upstream": up.requests.length,
      "5xx / hangs / crashes": 0,
      seconds,
      "requests per second": sent / seconds,
      ...byRoute,
      "slowest answer": `${Math.round(slowest.ms)} ms (${slowest.route})`,
    });
  }, 1_800_000);
});
