// A fine-tuned model another process registered in the shared DATA_DIR (a worker, as seen by
// a replica) is served by the first request that names it: no 404 while the replica waits
// for its next registry sync. This server has no Redis, so it has no sync timer at all: only
// the lookup on demand can find the model.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startServer, type TestServer, TINY_MODEL, tinyConfig } from "../helpers/server.ts";

let dataDir: string;
let s: TestServer;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "roundhouse-registry-"));
  s = await startServer({ config: tinyConfig("finetune: {context: 64}"), dataDir });
});

afterAll(async () => {
  await s?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

/** What a worker leaves behind: the weights and a registry record whose path is relative to DATA_DIR/finetune. */
function registerElsewhere(jobId: string, id: string): void {
  const root = join(dataDir, "finetune");
  mkdirSync(join(root, "models"), { recursive: true });
  mkdirSync(join(root, "registry"), { recursive: true });
  copyFileSync(TINY_MODEL, join(root, "models", `${jobId}.gguf`));
  const record = { id, base: "roundhouse-tiny", job_id: jobId, path: `models/${jobId}.gguf`, created: 1_700_000_000 };
  writeFileSync(join(root, "registry", `${jobId}.json`), JSON.stringify(record));
}

it("serves a model registered by another process at the first request naming it", async () => {
  const unknown = await fetch(`${s.baseURL}/models/ft:roundhouse-tiny:elsewhere:AAAAAAAA`);
  expect(unknown.status).toBe(404);

  registerElsewhere("ftjob-AAAAAAAAAAAAAAAAAAAAAAAA", "ft:roundhouse-tiny:elsewhere:AAAAAAAA");
  const reply = await s.client.chat.completions.create({
    model: "ft:roundhouse-tiny:elsewhere:AAAAAAAA",
    messages: [{ role: "user", content: "Hi" }],
    max_tokens: 2,
  });
  expect(reply.model).toBe("ft:roundhouse-tiny:elsewhere:AAAAAAAA");

  registerElsewhere("ftjob-BBBBBBBBBBBBBBBBBBBBBBBB", "ft:roundhouse-tiny:elsewhere:BBBBBBBB");
  const retrieved = await s.client.models.retrieve("ft:roundhouse-tiny:elsewhere:BBBBBBBB");
  expect(retrieved.id).toBe("ft:roundhouse-tiny:elsewhere:BBBBBBBB");

  // Names that are not fine-tuned models are still a 404 in OpenAI's envelope.
  const missing = await fetch(`${s.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "ft:roundhouse-tiny:nothing:CCCCCCCC", messages: [{ role: "user", content: "Hi" }] }),
  });
  expect(missing.status).toBe(404);
  expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("model_not_found");
});
