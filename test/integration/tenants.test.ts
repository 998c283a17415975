// Tenants beyond one key each (issue #21, item 4): keys of a project share what they make, the
// admin key sees every tenant's objects through /v1, and each tenant's stored bytes and waiting
// fine-tuning jobs are bounded. Against the real server, through the official client.
import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyId } from "../../src/telemetry/record.ts";
import { startServer, type TestServer, tinyConfig } from "../helpers/server.ts";

const ALICE = "sk-alice-5e0b7c";
const BOB = "sk-bob-1d94a2";
const CAROL = "sk-carol-c20f6e";
const ADMIN = "sk-admin-9a31f4";
const STORED_BYTES = 24_000;

const LINE = JSON.stringify({
  messages: [
    { role: "user", content: "What is the secret word?" },
    { role: "assistant", content: "The secret word is papaya." },
  ],
});
/** 40 examples, about 4.5 KB. */
const TRAINING = Array.from({ length: 40 }, () => LINE).join("\n");

let s: TestServer;
beforeAll(async () => {
  const tenants = `tenants:
  projects:
    research: {keys: [${keyId(`Bearer ${ALICE}`)}, ${keyId(`Bearer ${BOB}`)}]}
  limits: {stored_bytes: ${STORED_BYTES}, queued_jobs: 1}`;
  s = await startServer({
    config: tinyConfig("finetune:\n  context: 64", tenants),
    apiKeys: [ALICE, BOB, CAROL],
    adminApiKey: ADMIN,
  });
});
afterAll(async () => {
  await s?.close();
});

const as = (key: string) => new OpenAI({ baseURL: s.baseURL, apiKey: key, maxRetries: 0 });
const status = (p: Promise<unknown>) =>
  p.then(
    () => 200,
    (e: { status?: number }) => e.status ?? 0,
  );
const upload = async (key: string, text: string, name = "train.jsonl") =>
  as(key).files.create({ file: await toFile(Buffer.from(text), name), purpose: "fine-tune" });

describe("projects", () => {
  it("keys of one project see each other's files; a key outside it gets 404; the admin key sees all", async () => {
    const file = await upload(ALICE, TRAINING, "alice.jsonl");
    const carols = await upload(CAROL, TRAINING, "carol.jsonl");
    const bob = as(BOB);
    expect((await bob.files.retrieve(file.id)).filename).toBe("alice.jsonl");
    expect((await bob.files.list()).data.map((f) => f.id)).toContain(file.id);
    expect(await (await bob.files.content(file.id)).text()).toBe(TRAINING);
    expect(await status(as(CAROL).files.retrieve(file.id))).toBe(404);
    expect((await as(CAROL).files.list()).data.map((f) => f.id)).not.toContain(file.id);
    expect(await status(bob.files.retrieve(carols.id))).toBe(404);

    const admin = as(ADMIN);
    const listed = (await admin.files.list()).data.map((f) => f.id);
    expect(listed).toEqual(expect.arrayContaining([file.id, carols.id]));
    expect((await admin.files.retrieve(carols.id)).id).toBe(carols.id);
    await admin.files.delete(carols.id);
    expect(await status(as(CAROL).files.retrieve(carols.id))).toBe(404);
    await bob.files.delete(file.id);
  });

  it("a project shares its cache entries; another tenant's identical request is a miss", async () => {
    const ask = (key: string) =>
      fetch(`${s.baseURL}/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "tiny",
          messages: [{ role: "user", content: "Which tenant asked this first?" }],
          temperature: 0,
          max_tokens: 4,
        }),
      }).then((r) => r.headers.get("x-roundhouse-cache"));
    expect(await ask(ALICE)).toBe("miss");
    expect(await ask(BOB)).toBe("hit");
    expect(await ask(CAROL)).toBe("miss");
  });
});

describe("tenant limits", () => {
  it("an upload past tenants.limits.stored_bytes is a 400 naming the limit, and is not stored", async () => {
    const kept = await upload(ALICE, TRAINING);
    try {
      // Fits one tenant's allowance alone, not beside the file kept above.
      const big = Array.from({ length: Math.floor((STORED_BYTES - 2000) / (LINE.length + 1)) }, () => LINE).join("\n");
      const err = await upload(BOB, big, "big.jsonl").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ code: "storage_limit_exceeded", param: "file" });
      expect((err as Error).message).toContain(String(STORED_BYTES));
      expect((await as(BOB).files.list()).data.map((f) => f.filename)).not.toContain("big.jsonl");
      // The limit is each tenant's: another one still has its whole allowance.
      const carols = await upload(CAROL, big, "big.jsonl");
      await as(CAROL).files.delete(carols.id);
    } finally {
      await as(ALICE).files.delete(kept.id);
    }
  });

  it("a job past tenants.limits.queued_jobs is a 429 while one waits; other tenants are not held back", async () => {
    const admin = as(ADMIN);
    const file = await upload(ALICE, TRAINING);
    const carolsFile = await upload(CAROL, TRAINING);
    const made: string[] = [];
    const create = async (key: string, training_file: string) => {
      const job = await as(key).fineTuning.jobs.create({
        model: "tiny",
        training_file,
        hyperparameters: { n_epochs: 50 },
      });
      made.push(job.id);
      return job;
    };
    try {
      // In-process training runs one job at a time: while the first trains, the next one waits.
      const first = await create(ALICE, file.id);
      for (let i = 0; (await admin.fineTuning.jobs.retrieve(first.id)).status !== "running"; i++) {
        expect(i, "the first job never started").toBeLessThan(600);
        await new Promise((r) => setTimeout(r, 100));
      }
      await create(BOB, file.id);
      const err = await create(ALICE, file.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.RateLimitError);
      expect(err).toMatchObject({ code: "too_many_queued_jobs" });
      expect((err as Error).message).toMatch(/queued_jobs is 1/);
      expect((await create(CAROL, carolsFile.id)).status).toBe("validating_files");
      // The admin key lists every tenant's jobs.
      const listed = (await admin.fineTuning.jobs.list({ limit: 100 })).data.map((j) => j.id);
      expect(listed).toEqual(expect.arrayContaining(made));
    } finally {
      for (const id of made.reverse()) await admin.fineTuning.jobs.cancel(id).catch(() => undefined);
    }
  });
});
