// Small holes an outside review found (issue #21, item 13), each against the real server: a
// max_tokens no context can hold, feedback from a key other than the one that asked, and an
// unexpected error in a sub-app reaching the one root handler and its log.
import { copyFileSync, mkdtempSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import OpenAI, { toFile } from "openai";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/telemetry/record.ts";
import { brokenModelFile } from "../helpers/broken-model.ts";
import { envelopeOf } from "../helpers/http.ts";
import { startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

const ALICE = "sk-alice-3c1d9e";
const BOB = "sk-bob-7a2f08";

const LINE = JSON.stringify({
  messages: [
    { role: "user", content: "What is the secret word?" },
    { role: "assistant", content: "The secret word is papaya." },
  ],
});

const EXPERIMENT = `experiments:
  - name: ab
    variants:
      - {name: control, model: roundhouse-tiny, weight: 1}`;

let s: TestServer;
let logged = "";
beforeAll(async () => {
  const out = new PassThrough();
  out.on("data", (d: Buffer) => {
    logged += d.toString();
  });
  s = await startServer({
    config: tinyConfig("", EXPERIMENT),
    apiKeys: [ALICE, BOB],
    logger: pino({ level: "info" }, out),
  });
});
afterAll(async () => {
  await s?.close();
});

const client = (key: string) => new OpenAI({ baseURL: s.baseURL, apiKey: key, maxRetries: 0 });
const post = (key: string, path: string, body: unknown) =>
  fetch(`${s.baseURL}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });

describe("max_tokens", () => {
  it("one larger than any context is refused with a message about max_tokens, not the messages", async () => {
    for (const param of ["max_tokens", "max_completion_tokens"] as const) {
      const err = await client(ALICE)
        .chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hi" }], [param]: 100_000 })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      const { message, param: named } = err as InstanceType<typeof OpenAI.BadRequestError>;
      expect(named).toBe(param);
      expect(message).toContain(param);
      expect(message).toMatch(/512/);
      expect(message).not.toMatch(/reduce the length of the messages/);
    }
  });

  it("one that fits the context but not beside these messages still names both", async () => {
    const err = await client(ALICE)
      .chat.completions.create({ model: "tiny", messages: [{ role: "user", content: "Hi" }], max_tokens: 510 })
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 400, code: "context_length_exceeded" });
    expect((err as Error).message).toMatch(/max_tokens/);
  });
});

describe("feedback", () => {
  it("only the key that made a request can rate it; another key gets the 404 of an unknown request", async () => {
    const res = await post(ALICE, "/chat/completions", {
      model: "ab",
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 1,
    });
    expect(res.status).toBe(200);
    const requestId = res.headers.get("x-request-id") as string;
    const bob = await post(BOB, "/feedback", { request_id: requestId, score: -1 });
    expect(bob.status).toBe(404);
    expect(((await bob.json()) as { error: { param: string } }).error.param).toBe("request_id");
    const alice = await post(ALICE, "/feedback", { request_id: requestId, score: 1 });
    expect(alice.status).toBe(200);
  });
});

describe("errors", () => {
  it("an unexpected error in a sub-app is a 500 in the envelope and is logged by the root handler", async () => {
    const files = s.services.fineTuning.files;
    const list = files.list.bind(files);
    files.list = () => Promise.reject(new Error("disk on fire 8c1e"));
    try {
      const res = await fetch(`${s.baseURL}/files`, { headers: { authorization: `Bearer ${ALICE}` } });
      expect(res.status).toBe(500);
      const body = (await res.json()) as { error: { message: string; type: string } };
      expect(body.error.type).toBe("server_error");
      expect(body.error.message).not.toContain("disk on fire");
    } finally {
      files.list = list;
    }
    const line = logged
      .split("\n")
      .filter((l) => l.includes("disk on fire 8c1e"))
      .map((l) => JSON.parse(l) as { level: number; msg: string });
    expect(line).toHaveLength(1);
    expect(line[0]?.level).toBe(50);
  });

  it("a client's mistake in a sub-app is not logged as an error", async () => {
    const before = logged.length;
    const res = await fetch(`${s.baseURL}/files/file-AAAAAAAAAAAAAAAAAAAAAAAA`, {
      headers: { authorization: `Bearer ${ALICE}` },
    });
    expect(res.status).toBe(404);
    const errors = logged
      .slice(before)
      .split("\n")
      .filter((l) => l !== "" && (JSON.parse(l) as { level: number }).level >= 50);
    expect(errors).toEqual([]);
  });
});

describe("slow bodies", () => {
  it("a body trickling in past limits.body_timeout gets 408 in the envelope, logged at info without a stack", async () => {
    let log = "";
    const out = new PassThrough();
    out.on("data", (d: Buffer) => {
      log += d.toString();
    });
    const slow = await startServer({
      config: tinyConfig("", "limits:\n  body_timeout: 1s"),
      logger: pino({ level: "info" }, out),
    });
    try {
      const url = new URL(slow.url);
      const started = performance.now();
      const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const socket = connect(Number(url.port), url.hostname, () => {
          socket.write(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
          );
          // One byte every 200 ms: never idle, never done (100 bytes would take 20 s).
          const drip = setInterval(() => socket.write("{"), 200);
          socket.on("close", () => clearInterval(drip));
        });
        let raw = "";
        socket.on("data", (d: Buffer) => {
          raw += d.toString();
        });
        socket.on("close", () => {
          const [head = "", body = ""] = raw.split("\r\n\r\n");
          resolve({ status: Number(head.split(" ")[1]), body });
        });
        socket.on("error", reject);
        socket.setTimeout(15_000, () => socket.destroy(new Error("no answer in 15 s")));
      });
      const seconds = (performance.now() - started) / 1000;
      expect(answer.status).toBe(408);
      expect(envelopeOf(answer.body).error.message).toMatch(/body_timeout|in time/);
      // 1 s limit, checked every ~second: well under the 20 s the body would take.
      expect(seconds).toBeLessThan(8);
      await new Promise((r) => setTimeout(r, 200));
      const lines = log
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => JSON.parse(l) as { level: number; msg: string; err?: { stack?: string } });
      expect(lines.filter((l) => l.level >= 40)).toEqual([]);
      const timedOut = lines.filter((l) => /in time/.test(l.msg));
      expect(timedOut).toHaveLength(1);
      expect(timedOut[0]?.level).toBe(30);
      expect(timedOut[0]?.err?.stack).toBeUndefined();
    } finally {
      await slow.close();
    }
  }, 30_000);
});

describe("nothing internal leaks", () => {
  // A folder whose name must never reach a client, holding a model that fails to load.
  const HIDDEN = mkdtempSync(join(tmpdir(), "secret-dir-4f1a-"));
  copyFileSync(brokenModelFile(), join(HIDDEN, "broken.gguf"));
  const ADMIN = "sk-admin-90ab1c";
  let log = "";
  let leaky: TestServer;
  beforeAll(async () => {
    const out = new PassThrough();
    out.on("data", (d: Buffer) => {
      log += d.toString();
    });
    leaky = await startServer({
      config: [
        tinyConfig("finetune:\n  context: 64", "metrics:\n  auth: api"),
        "  - id: broken",
        "    provider: llama",
        `    path: ${HIDDEN}/broken.gguf`,
        "    context_size: 256",
        "    threads: 1",
        "  - id: baseless",
        "    provider: llama",
        `    path: ${TINY_MODEL}`,
        "    context_size: 256",
        "    threads: 1",
        "    finetune:",
        "      context: 64",
        `      base: ${HIDDEN}/base-f32.gguf`,
      ].join("\n"),
      apiKeys: [ALICE],
      adminApiKey: ADMIN,
      logger: pino({ level: "info" }, out),
    });
  });
  afterAll(async () => {
    await leaky?.close();
  });

  it("metrics.auth: api makes /metrics need an API key (or the admin key)", async () => {
    const get = (headers: Record<string, string> = {}) => fetch(`${leaky.url}/metrics`, { headers });
    const open = await get();
    expect(open.status).toBe(401);
    envelopeOf(await open.text());
    expect((await get({ authorization: "Bearer sk-wrong" })).status).toBe(401);
    const withKey = await get({ authorization: `Bearer ${ALICE}` });
    expect(withKey.status).toBe(200);
    expect(await withKey.text()).toContain("roundhouse_");
    expect((await get({ authorization: `Bearer ${ADMIN}` })).status).toBe(200);
  });

  it("a model that cannot load is a 503 without its file's path; the log has it", async () => {
    const direct = await fetch(`${leaky.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${ALICE}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "broken", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 }),
    });
    expect(direct.status).toBe(503);
    const text = await direct.text();
    expect(envelopeOf(text).error.message).toMatch(/broken/);
    expect(text).not.toContain(HIDDEN);
    expect(text).not.toMatch(/"\/[a-z]/);
    expect(log).toContain(HIDDEN);
  });

  it("a job's error names no absolute path; the log has it", async () => {
    const client = new OpenAI({ baseURL: leaky.baseURL, apiKey: ALICE, maxRetries: 0 });
    const file = await client.files.create({
      file: await toFile(Buffer.from(Array.from({ length: 40 }, () => LINE).join("\n")), "t.jsonl"),
      purpose: "fine-tune",
    });
    const job = await client.fineTuning.jobs.create({ model: "baseless", training_file: file.id });
    let done = job;
    const until = Date.now() + 60_000;
    while (!["succeeded", "failed", "cancelled"].includes(done.status) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      done = await client.fineTuning.jobs.retrieve(job.id);
    }
    expect(done.status).toBe("failed");
    expect(done.error?.message).toMatch(/does not exist/);
    expect(JSON.stringify(done)).not.toContain(HIDDEN);
    const events = await client.fineTuning.jobs.listEvents(job.id);
    expect(JSON.stringify(events.data)).not.toContain(HIDDEN);
    expect(log).toContain(HIDDEN);
  });
});

describe("rate limits without API_KEYS", () => {
  const limited = async (limit: string, run: (s: TestServer) => Promise<void>) => {
    const open = await startServer({ config: tinyConfig("", `rate_limits:\n  default: ${limit}`) });
    try {
      await run(open);
    } finally {
      await open.close();
    }
  };
  const randomBearer = () => ({ authorization: `Bearer sk-${Math.random().toString(36).slice(2)}` });

  it("requests are counted per client address: a new bearer string per request does not reset the count", async () => {
    await limited("{ requests_per_minute: 3 }", async (open) => {
      const statuses = [];
      for (let i = 0; i < 5; i++)
        statuses.push((await fetch(`${open.baseURL}/models`, { headers: randomBearer() })).status);
      expect(statuses).toEqual([200, 200, 200, 429, 429]);
    });
  });

  it("tokens too: what one bearer string used counts for the next from the same address", async () => {
    await limited("{ tokens_per_minute: 5 }", async (open) => {
      const ask = () =>
        fetch(`${open.baseURL}/chat/completions`, {
          method: "POST",
          headers: { ...randomBearer(), "content-type": "application/json" },
          body: JSON.stringify({ model: "tiny", messages: [{ role: "user", content: "Hello there" }], max_tokens: 4 }),
        });
      expect((await ask()).status).toBe(200);
      // The first request's tokens are counted once its record is written, just after the response.
      let status = 0;
      for (let i = 0; i < 20 && status !== 429; i++) {
        status = (await ask()).status;
        if (status !== 429) await new Promise((r) => setTimeout(r, 50));
      }
      expect(status).toBe(429);
    });
  });
});

describe("keys are tenants", () => {
  let tenants: TestServer;
  beforeAll(async () => {
    tenants = await startServer({ config: tinyConfig("finetune:\n  context: 64"), apiKeys: [ALICE, BOB] });
  });
  afterAll(async () => {
    await tenants?.close();
  });
  const as = (key: string) => new OpenAI({ baseURL: tenants.baseURL, apiKey: key, maxRetries: 0 });
  const status = (p: Promise<unknown>) =>
    p.then(
      () => 200,
      (e: { status?: number }) => e.status ?? 0,
    );

  it("another key's files, jobs, events, checkpoints and fine-tuned models are 404s and missing from its lists", async () => {
    const alice = as(ALICE);
    const bob = as(BOB);
    const file = await alice.files.create({
      file: await toFile(Buffer.from(Array.from({ length: 40 }, () => LINE).join("\n")), "alice.jsonl"),
      purpose: "fine-tune",
    });
    expect(await status(bob.files.retrieve(file.id))).toBe(404);
    expect(await status(bob.files.content(file.id))).toBe(404);
    expect(await status(bob.files.delete(file.id))).toBe(404);
    expect((await bob.files.list()).data.map((f) => f.id)).not.toContain(file.id);
    expect((await alice.files.list()).data.map((f) => f.id)).toContain(file.id);
    // Bob cannot train on Alice's file: it does not exist for him.
    expect(await status(bob.fineTuning.jobs.create({ model: "tiny", training_file: file.id }))).toBe(400);

    const job = await alice.fineTuning.jobs.create({ model: "tiny", training_file: file.id, suffix: "alice" });
    try {
      expect(await status(bob.fineTuning.jobs.retrieve(job.id))).toBe(404);
      expect(await status(bob.fineTuning.jobs.cancel(job.id))).toBe(404);
      expect(await status(bob.fineTuning.jobs.listEvents(job.id))).toBe(404);
      expect(await status(bob.fineTuning.jobs.checkpoints.list(job.id))).toBe(404);
      expect((await bob.fineTuning.jobs.list()).data.map((j) => j.id)).not.toContain(job.id);
      expect((await alice.fineTuning.jobs.list()).data.map((j) => j.id)).toContain(job.id);
      expect((await alice.fineTuning.jobs.retrieve(job.id)).id).toBe(job.id);
    } finally {
      await alice.fineTuning.jobs.cancel(job.id).catch(() => undefined);
    }

    // A fine-tuned model of Alice's job (registered as the trainer would).
    // A copy: deleting a fine-tuned model deletes its file.
    const weights = join(tenants.dataDir, "alice-model.gguf");
    copyFileSync(TINY_MODEL, weights);
    const model = `ft:roundhouse-tiny:alice:${job.id.slice(-8)}`;
    await tenants.services.fineTuning.models.register({
      id: model,
      base: "roundhouse-tiny",
      job_id: job.id,
      path: weights,
      created: 0,
    });
    expect((await alice.models.list()).data.map((m) => m.id)).toContain(model);
    expect((await bob.models.list()).data.map((m) => m.id)).not.toContain(model);
    expect(await status(bob.models.retrieve(model))).toBe(404);
    expect(await status(bob.models.delete(model))).toBe(404);
    expect((await alice.models.retrieve(model)).id).toBe(model);
    // Nor can another tenant use it.
    const ask = { model, messages: [{ role: "user" as const, content: "Hi" }], max_tokens: 2 };
    await expect(bob.chat.completions.create(ask)).rejects.toMatchObject({ status: 404, code: "model_not_found" });
    expect((await alice.chat.completions.create(ask)).model).toBe(model);
  });
});

describe("forced variants", () => {
  const ADMIN = "sk-admin-77de01";
  let canary: TestServer;
  beforeAll(async () => {
    const experiment = `experiments:
  - name: split
    force_keys: [${keyId(`Bearer ${ALICE}`)}]
    variants:
      - {name: control, model: roundhouse-tiny, weight: 100}
      - name: canary
        model: broken
        weight: 0
        canary: true
        fallback: false
        rollback:
          - {metric: error_rate, max: 0.2, min_requests: 3, window: 5m}`;
    canary = await startServer({
      config: [
        tinyConfig("", experiment),
        "  - id: broken",
        "    provider: llama",
        `    path: ${brokenModelFile()}`,
        "    context_size: 256",
        "    threads: 1",
      ].join("\n"),
      apiKeys: [ALICE, BOB],
      adminApiKey: ADMIN,
    });
  });
  afterAll(async () => {
    await canary?.close();
  });
  const force = (key: string) =>
    fetch(`${canary.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "x-roundhouse-variant": "canary" },
      body: JSON.stringify({ model: "split", messages: [{ role: "user", content: "Hi" }], max_tokens: 1 }),
    });
  const canaryResult = async () => {
    const res = await fetch(`${canary.url}/admin/experiments/split`, { headers: { authorization: `Bearer ${ADMIN}` } });
    const body = (await res.json()) as {
      variants: { name: string; state: string; requests: number; forced: number }[];
    };
    return body.variants.find((v) => v.name === "canary");
  };

  it("only keys in force_keys may force a variant; others get 403 naming the header", async () => {
    const res = await force(BOB);
    expect(res.status).toBe(403);
    const { error } = envelopeOf(await res.text());
    expect(error).toMatchObject({ type: "permission_error", param: "x-roundhouse-variant" });
  });

  it("the admin key may force any variant through /v1", async () => {
    const res = await force(ADMIN);
    // Served by the forced variant (a model that cannot load), not refused at the door.
    expect(res.status).toBe(503);
    expect(res.headers.get("x-roundhouse-variant")).toBe("canary");
    expect((await canaryResult())?.state).toBe("active");
  });

  it("forced requests are served and counted as forced, never in the rollback window or the results", async () => {
    const before = (await canaryResult())?.forced ?? 0;
    for (let i = 0; i < 6; i++) expect((await force(ALICE)).status).toBe(503);
    // Give the rollback rules time to judge (they run just after each record).
    await new Promise((r) => setTimeout(r, 500));
    const result = await canaryResult();
    expect(result).toMatchObject({ state: "active", requests: 0, forced: before + 6 });
  });
});
