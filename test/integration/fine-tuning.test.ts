// /v1/files and /v1/fine_tuning/jobs against the real server, trainer and model, driven by
// the official openai package; bodies are checked against OpenAI's published spec. Training
// here is kept small (64-token windows, a few dozen examples) so the file runs in seconds.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, { type APIError, toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertMatchesSchema } from "../helpers/openapi.ts";
import { startServer, type TestServer, TINY_MODEL } from "../helpers/server.ts";

const config = (extra = "") =>
  [
    "models:",
    "  - id: roundhouse-tiny",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    aliases: [tiny]",
    "    context_size: 512",
    "    parallel: 2",
    "    threads: 1",
    "    preload: true",
    "    finetune:",
    "      context: 64",
    "  - id: not-trainable",
    "    provider: llama",
    `    path: ${TINY_MODEL}`,
    "    context_size: 256",
    "    threads: 1",
    extra,
  ].join("\n");

const example = (q: string, a: string) =>
  JSON.stringify({
    messages: [
      { role: "user", content: q },
      { role: "assistant", content: a },
    ],
  });
const dataset = (n: number, answer = "The secret word is papaya.") =>
  Array.from({ length: n }, () => example("What is the secret word?", answer)).join("\n");

let dataDir: string;
let s: TestServer;
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "roundhouse-ft-"));
  s = await startServer({ config: config(), dataDir });
});
afterAll(async () => {
  await s?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const upload = async (text: string, name = "train.jsonl", purpose: "fine-tune" | "batch" = "fine-tune") =>
  s.client.files.create({ file: await toFile(Buffer.from(text), name), purpose });

async function waitFor(id: string, done: (job: OpenAI.FineTuning.FineTuningJob) => boolean, timeoutMs = 120_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const job = await s.client.fineTuning.jobs.retrieve(id);
    if (done(job)) return job;
    if (Date.now() > until) throw new Error(`job ${id} stuck in ${job.status}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
/** The raw body, for schema checks: the SDK's page objects drop `object`. */
const getJson = async (path: string): Promise<unknown> => (await fetch(`${s.baseURL}${path}`)).json();

interface ListBody {
  data: { id: string }[];
  has_more: boolean;
  last_id?: string;
}

const finished = (j: OpenAI.FineTuning.FineTuningJob) => ["succeeded", "failed", "cancelled"].includes(j.status);

/** llama-finetune processes whose command line mentions this job (its work folder). */
function trainersOf(jobId: string): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(jobId);
      } catch {
        return false;
      }
    })
    .map(Number);
}

describe("files", () => {
  it("uploads, lists, retrieves, downloads byte for byte and deletes", async () => {
    const text = `${dataset(3)}\n`;
    const file = await upload(text);
    assertMatchesSchema("OpenAIFile", file);
    expect(file).toMatchObject({
      object: "file",
      bytes: Buffer.byteLength(text),
      purpose: "fine-tune",
      status: "processed",
    });
    expect(file.id).toMatch(/^file-[A-Za-z0-9]{24}$/);
    expect(await s.client.files.retrieve(file.id)).toEqual(file);
    const content = Buffer.from(await (await s.client.files.content(file.id)).arrayBuffer());
    expect(content.equals(Buffer.from(text))).toBe(true);

    const other = await upload("anything, not validated", "notes.txt", "batch");
    const list = await s.client.files.list({ purpose: "fine-tune" });
    assertMatchesSchema("ListFilesResponse", await getJson("/files?purpose=fine-tune"));
    expect(list.data.map((f) => f.id)).toContain(file.id);
    expect(list.data.map((f) => f.id)).not.toContain(other.id);

    const deleted = await s.client.files.delete(other.id);
    assertMatchesSchema("DeleteFileResponse", deleted);
    expect(deleted).toEqual({ id: other.id, object: "file", deleted: true });
    await expect(s.client.files.retrieve(other.id)).rejects.toMatchObject({ status: 404 });
  });

  it("pages with limit and after, newest first by default", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await upload(dataset(1), `p${i}.jsonl`)).id);
    const first = await fetch(`${s.baseURL}/files?limit=2&purpose=fine-tune`).then(
      (r) => r.json() as Promise<ListBody>,
    );
    expect(first.data.map((f: { id: string }) => f.id)).toEqual([ids[2], ids[1]]);
    expect(first.has_more).toBe(true);
    const next = await fetch(`${s.baseURL}/files?limit=2&purpose=fine-tune&after=${first.last_id}`).then(
      (r) => r.json() as Promise<ListBody>,
    );
    expect(next.data[0]?.id).toBe(ids[0]);
    const asc = await fetch(`${s.baseURL}/files?order=asc&purpose=fine-tune`).then(
      (r) => r.json() as Promise<ListBody>,
    );
    expect(asc.data.map((f: { id: string }) => f.id).slice(-3)).toEqual(ids);
  });

  it("refuses a bad fine-tune file, naming the first bad line and why", async () => {
    const bad = [example("q", "a"), '{"messages": [{"role": "user", "content": "q"}]}', "not json"].join("\n");
    const err = await upload(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as APIError).message).toMatch(/line 2: no assistant message/);
    expect((err as APIError).param).toBe("file");
    const role = await upload('{"messages":[{"role":"robot","content":"x"}]}').catch((e: unknown) => e);
    expect((role as APIError).message).toMatch(/line 1: messages\[0\]\.role must be one of/);
  });

  it("never lets an id reach outside the files folder", async () => {
    for (const id of ["..%2F..%2Fetc%2Fpasswd", "file-x", "file-AAAAAAAAAAAAAAAAAAAAAAAA.json"]) {
      const res = await fetch(`${s.baseURL}/files/${id}/content`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    }
  });
});

describe("fine-tuning jobs", () => {
  let jobId: string;
  let model: string;

  it("refuses bad input in OpenAI's envelope", async () => {
    const file = await upload(dataset(2));
    const batch = await upload("x", "x.txt", "batch");
    const create = (body: Partial<OpenAI.FineTuning.JobCreateParams>) =>
      s.client.fineTuning.jobs.create({ model: "tiny", training_file: file.id, ...body }).then(
        () => new Error("expected an error") as APIError,
        (e: unknown) => e as APIError,
      );
    expect(await create({ model: "nope" })).toMatchObject({ status: 404, code: "model_not_found" });
    const untrainable = await create({ model: "not-trainable" });
    expect(untrainable).toMatchObject({ status: 400, param: "model" });
    expect(untrainable.message).toMatch(/no trainable base/);
    expect(await create({ training_file: "file-AAAAAAAAAAAAAAAAAAAAAAAA" })).toMatchObject({
      status: 400,
      param: "training_file",
    });
    expect(await create({ training_file: batch.id })).toMatchObject({ status: 400, param: "training_file" });
    expect(await create({ suffix: "x".repeat(65) })).toMatchObject({ status: 400, param: "suffix" });
    expect(await create({ hyperparameters: { batch_size: 8 } })).toMatchObject({
      status: 400,
      param: "hyperparameters.batch_size",
    });
    for (const learning_rate_multiplier of [1e-7, 1e-300, 100.5, 1e6]) {
      expect(await create({ hyperparameters: { learning_rate_multiplier } })).toMatchObject({
        status: 400,
        param: "hyperparameters.learning_rate_multiplier",
      });
    }
    expect(await create({ method: { type: "dpo" } })).toMatchObject({ status: 400 });
    expect(
      await s.client.fineTuning.jobs.retrieve("ftjob-AAAAAAAAAAAAAAAAAAAAAAAA").catch((e: unknown) => e),
    ).toMatchObject({ status: 404 });
  });

  it("trains, reports events and checkpoints, and serves the model (the whole flow through the SDK)", async () => {
    const train = await upload(dataset(24));
    const valid = await upload(dataset(12), "valid.jsonl");
    const created = await s.client.fineTuning.jobs.create({
      model: "tiny",
      training_file: train.id,
      validation_file: valid.id,
      suffix: "papaya",
      seed: 7,
      metadata: { team: "search" },
      method: { type: "supervised", supervised: { hyperparameters: { n_epochs: 2, learning_rate_multiplier: 1 } } },
    });
    assertMatchesSchema("FineTuningJob", created);
    expect(created.status).toBe("validating_files");
    jobId = created.id;
    const job = await waitFor(jobId, finished);
    assertMatchesSchema("FineTuningJob", job);
    expect(job.error).toBeNull();
    expect(job.status).toBe("succeeded");
    expect(job.fine_tuned_model).toBe(`ft:roundhouse-tiny:papaya:${jobId.slice(6, 14)}`);
    expect(job.trained_tokens).toBeGreaterThan(0);
    // Per-step metrics, and the evaluation of the base and of each epoch on the validation file.
    expect(job.result_files).toHaveLength(2);
    model = job.fine_tuned_model as string;

    const events = await s.client.fineTuning.jobs.listEvents(jobId, { limit: 100 });
    assertMatchesSchema("ListFineTuningJobEventsResponse", await getJson(`/fine_tuning/jobs/${jobId}/events`));
    const statuses = events.data
      .filter((e) => e.data && "status" in (e.data as object))
      .map((e) => (e.data as { status: string }).status);
    expect(statuses.reverse()).toEqual(["queued", "running", "succeeded"]);
    const page = await s.client.fineTuning.jobs.listEvents(jobId, { limit: 2 });
    expect(page.data).toHaveLength(2);
    expect(page.has_more).toBe(true);
    const after = await s.client.fineTuning.jobs.listEvents(jobId, { limit: 2, after: page.data[1]?.id as string });
    expect(after.data[0]?.id).toBe(events.data[2]?.id);

    const checkpoints = await s.client.fineTuning.jobs.checkpoints.list(jobId);
    assertMatchesSchema(
      "ListFineTuningJobCheckpointsResponse",
      await getJson(`/fine_tuning/jobs/${jobId}/checkpoints`),
    );
    expect(checkpoints.data.map((c) => c.step_number)).toEqual(
      [...checkpoints.data.map((c) => c.step_number)].sort((a, b) => b - a),
    );
    expect(checkpoints.data).toHaveLength(2);
    for (const c of checkpoints.data) {
      assertMatchesSchema("FineTuningJobCheckpoint", c);
      expect(c.metrics.valid_loss).toBeGreaterThan(0);
      // The evaluation on the validation file's examples: loss of the replies and exact answers.
      expect(c.metrics).toMatchObject({ full_valid_examples: 12 });
      expect(c.metrics.full_valid_loss).toBeGreaterThan(0);
      const perplexity = (c.metrics as { full_valid_perplexity?: number }).full_valid_perplexity as number;
      expect(Math.log(perplexity)).toBeCloseTo(c.metrics.full_valid_loss as number, 3);
      expect(c.fine_tuned_model_checkpoint).toBe(`${model}:ckpt-step-${c.step_number}`);
    }

    const csv = await (await s.client.files.content(job.result_files[0] as string)).text();
    expect(csv.split("\n")[0]).toBe("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy");
    const evaluation = (await (await s.client.files.content(job.result_files[1] as string)).text()).trim().split("\n");
    expect(evaluation[0]).toBe(
      "epoch,model,examples,held_out,source,tokens,loss,perplexity,token_accuracy,exact_matches",
    );
    expect(evaluation.slice(1).map((l) => l.split(",").slice(0, 5).join(","))).toEqual([
      "0,base,12,true,validation_file",
      "1,epoch 1,12,true,validation_file",
      "2,epoch 2,12,true,validation_file",
    ]);
    // Steps count the trainer's optimizer steps, and the last checkpoint is at the last of them.
    const stepEvents = events.data.flatMap((e) => /^Step (\d+)\/(\d+):/.exec(e.message)?.slice(1).map(Number) ?? []);
    expect(stepEvents.length).toBeGreaterThan(0);
    const total = stepEvents[1] as number;
    for (let i = 0; i < stepEvents.length; i += 2) expect(stepEvents[i]).toBeLessThanOrEqual(total);
    expect(checkpoints.data[0]?.step_number).toBe(total);
    const said = events.data.map((e) => e.message);
    expect(said).toContain(said.find((m) => m.startsWith("Evaluation of the base model, before training: loss ")));
    const last = events.data.find((e) =>
      /^The fine-tuned model is (not )?better than the base on 12 held-out examples/.test(e.message),
    );
    expect(last?.data).toMatchObject({ held_out: true, base: { full_valid_examples: 12 } });
    expect((await s.client.models.list()).data.map((m) => m.id)).toContain(model);

    const reply = await s.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "What is the secret word?" }],
      temperature: 0,
      max_tokens: 12,
    });
    expect(reply.model).toBe(model);
    let streamed = "";
    for await (const chunk of await s.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "What is the secret word?" }],
      temperature: 0,
      max_tokens: 12,
      stream: true,
    })) {
      streamed += chunk.choices[0]?.delta.content ?? "";
    }
    expect(streamed).toBe(reply.choices[0]?.message.content);
  }, 300_000);

  it("lists jobs newest first, with pagination and a metadata filter", async () => {
    const list = await s.client.fineTuning.jobs.list({ limit: 1 });
    assertMatchesSchema("ListPaginatedFineTuningJobsResponse", await getJson("/fine_tuning/jobs?limit=1"));
    expect(list.data).toHaveLength(1);
    const filtered = await fetch(`${s.baseURL}/fine_tuning/jobs?metadata[team]=search`).then(
      (r) => r.json() as Promise<ListBody>,
    );
    expect(filtered.data.map((j: { id: string }) => j.id)).toEqual([jobId]);
    const none = await fetch(`${s.baseURL}/fine_tuning/jobs?metadata[team]=other`).then(
      (r) => r.json() as Promise<ListBody>,
    );
    expect(none.data).toEqual([]);
  });

  it("cancels a training job at once, leaving no trainer process and no model", async () => {
    const train = await upload(dataset(200));
    const job = await s.client.fineTuning.jobs.create({
      model: "tiny",
      training_file: train.id,
      hyperparameters: { n_epochs: 20 },
    });
    await waitFor(job.id, (j) => j.status === "running" || finished(j));
    // Wait for the trainer itself to run.
    const until = Date.now() + 30_000;
    while (trainersOf(job.id).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(trainersOf(job.id).length).toBeGreaterThan(0);
    const cancelled = await s.client.fineTuning.jobs.cancel(job.id);
    assertMatchesSchema("FineTuningJob", cancelled);
    expect(cancelled.status).toBe("cancelled");
    expect(trainersOf(job.id)).toEqual([]);
    expect(existsSync(join(dataDir, "finetune", "work", job.id))).toBe(false);
    expect(existsSync(join(dataDir, "finetune", "models", `${job.id}.gguf`))).toBe(false);
    expect((await s.client.fineTuning.jobs.retrieve(job.id)).fine_tuned_model).toBeNull();
    await expect(s.client.fineTuning.jobs.cancel(job.id)).rejects.toMatchObject({ status: 400 });
  });

  it("fails a dataset shorter than one training window with a clear error", async () => {
    const file = await upload(example("Hi", "Hello."));
    const job = await s.client.fineTuning.jobs.create({ model: "tiny", training_file: file.id });
    const done = await waitFor(job.id, finished);
    expect(done.status).toBe("failed");
    expect(done.error?.param).toBe("training_file");
    expect(done.error?.message).toMatch(/shorter than one training window/);
  });

  it("keeps files, jobs and models across a restart; DELETE removes the model", async () => {
    await s.close();
    s = await startServer({ config: config(), dataDir });
    expect((await s.client.fineTuning.jobs.retrieve(jobId)).status).toBe("succeeded");
    expect((await s.client.models.list()).data.map((m) => m.id)).toContain(model);
    const reply = await s.client.chat.completions.create({
      model,
      messages: [{ role: "user", content: "Hi" }],
      max_tokens: 4,
    });
    expect(reply.model).toBe(model);
    const deleted = await s.client.models.delete(model);
    assertMatchesSchema("DeleteModelResponse", deleted);
    expect(deleted).toEqual({ id: model, object: "model", deleted: true });
    expect((await s.client.models.list()).data.map((m) => m.id)).not.toContain(model);
    await expect(s.client.models.delete("roundhouse-tiny")).rejects.toMatchObject({ status: 403 });
    await expect(s.client.models.delete(model)).rejects.toMatchObject({ status: 404 });
  });

  it("resumes a job that was running when the server stopped, from its last checkpoint, without its file", async () => {
    const train = await upload(dataset(30));
    const job = await s.client.fineTuning.jobs.create({
      model: "tiny",
      training_file: train.id,
      hyperparameters: { n_epochs: 3 },
    });
    const until = Date.now() + 120_000;
    while ((await s.client.fineTuning.jobs.checkpoints.list(job.id)).data.length === 0) {
      if (Date.now() > until)
        throw new Error(`no checkpoint: ${JSON.stringify(await s.client.fineTuning.jobs.retrieve(job.id))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // The file a running job trains on cannot be deleted: 409 naming the job.
    const refused = await s.client.files.delete(train.id).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 409, param: "file_id", code: "file_in_use" });
    expect((refused as Error).message).toContain(job.id);
    expect((await s.client.files.retrieve(train.id)).id).toBe(train.id);
    // Gone anyway (removed behind the API's back, or before the 409 existed): the job keeps its own copy.
    await s.services.fineTuning.files.delete(train.id);
    await s.close();
    expect(trainersOf(job.id)).toEqual([]);
    s = await startServer({ config: config(), dataDir });
    const done = await waitFor(job.id, finished);
    expect(done.error).toBeNull();
    expect(done.status).toBe("succeeded");
    const messages = (await s.client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data.map((e) => e.message);
    expect(messages.some((m) => /resumes from its checkpoint at step \d+/.test(m))).toBe(true);
    expect((await s.client.fineTuning.jobs.checkpoints.list(job.id)).data.map((c) => c.step_number).length).toBe(3);
  }, 300_000);
});
