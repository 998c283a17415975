// Who owns what (tenants.projects, the admin key) and the tenants' limits: the pure decisions,
// the config that feeds them, and a worker's question whether a job may start training.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.ts";
import type { FineTuningJob } from "../../src/finetune/jobs.ts";
import { FineTuning } from "../../src/finetune/service.ts";
import { ApiKeys, OPEN_TENANT } from "../../src/security/api-keys.ts";
import {
  ADMIN_TENANT,
  mayStartTraining,
  projectTenant,
  queuedJobsRefusal,
  storageRefusal,
  Tenants,
} from "../../src/security/tenants.ts";
import { keyId } from "../../src/telemetry/record.ts";
import { testRuntime, tinyConfig } from "../helpers/server.ts";

const ALICE = keyId("Bearer sk-alice");
const BOB = keyId("Bearer sk-bob");
const CAROL = keyId("Bearer sk-carol");

const config = (tenants: string) => parseConfig(tinyConfig("", tenants), "/tmp/models.yaml");

describe("tenants config", () => {
  it("puts a project's keys in one tenant, with the project's limits or the default ones", () => {
    const { tenants } = config(`tenants:
  projects:
    research: {keys: [${ALICE}, ${BOB}], limits: {stored_bytes: 1MiB}}
  limits: {queued_jobs: 2, running_jobs: 1}`);
    const t = new Tenants(tenants);
    expect(t.ofKey(ALICE)).toBe(projectTenant("research"));
    expect(t.ofKey(BOB)).toBe(projectTenant("research"));
    expect(t.ofKey(CAROL)).toBe(CAROL);
    expect(t.limits(projectTenant("research"))).toEqual({ storedBytes: 1_048_576 });
    expect(t.limits(CAROL)).toEqual({ storedBytes: undefined, queuedJobs: 2, runningJobs: 1 });
  });

  it("refuses a key in two projects, naming both", () => {
    expect(() =>
      config(`tenants:
  projects:
    a: {keys: [${ALICE}]}
    b: {keys: [${BOB}, ${ALICE}]}`),
    ).toThrow(/tenants\.projects\.b\.keys\[1\].*already a key of project "a"/s);
  });

  it("refuses what is not a key id, and a project name outside the safe alphabet", () => {
    expect(() => config("tenants:\n  projects:\n    a: {keys: [sk-alice]}")).toThrow(/key id/);
    expect(() => config(`tenants:\n  projects:\n    "a/b": {keys: [${ALICE}]}`)).toThrow(/letters, digits/);
  });
});

describe("callers", () => {
  const keys = new ApiKeys(
    ["sk-alice", "sk-bob", "sk-carol"],
    "sk-admin",
    new Tenants(config(`tenants:\n  projects:\n    research: {keys: [${ALICE}, ${BOB}]}`).tenants),
  );

  it("a project's keys share a tenant and see only it; a key outside is its own", () => {
    const alice = keys.caller("Bearer sk-alice", "10.0.0.1");
    const bob = keys.caller("Bearer sk-bob", "10.0.0.2");
    const carol = keys.caller("Bearer sk-carol", "10.0.0.1");
    expect(alice).toMatchObject({ tenant: "project_research", viewer: "project_research", keyId: ALICE });
    expect(bob.tenant).toBe(alice.tenant);
    // Limits stay per key: a project is not one rate-limit bucket.
    expect(bob.limitKey).not.toBe(alice.limitKey);
    expect(carol).toMatchObject({ tenant: CAROL, viewer: CAROL });
  });

  it("the admin key owns what it makes and sees everyone's", () => {
    expect(keys.caller("Bearer sk-admin", "")).toMatchObject({ credential: "admin", tenant: ADMIN_TENANT });
    expect(keys.caller("Bearer sk-admin", "").viewer).toBeUndefined();
  });

  it("without API_KEYS everyone is the open tenant, and the admin key still sees all", () => {
    const open = new ApiKeys([], "sk-admin");
    expect(open.caller("Bearer whatever", "")).toMatchObject({ tenant: OPEN_TENANT, viewer: OPEN_TENANT });
    expect(open.caller("Bearer sk-admin", "")).toMatchObject({ tenant: OPEN_TENANT, viewer: undefined });
  });
});

describe("limits", () => {
  it("stored bytes: up to the limit is fine, one byte past it a 400 that says what to do", () => {
    expect(storageRefusal({ storedBytes: 100 }, 100)).toBeUndefined();
    expect(storageRefusal({}, 1e12)).toBeUndefined();
    const refused = storageRefusal({ storedBytes: 100 }, 101);
    expect(refused).toMatchObject({ status: 400, code: "storage_limit_exceeded", param: "file" });
    expect(refused?.message).toMatch(/101 bytes.*100 bytes.*DELETE \/v1\/files/);
  });

  it("queued jobs: a new one may wait while fewer than the limit do", () => {
    expect(queuedJobsRefusal({ queuedJobs: 2 }, 1)).toBeUndefined();
    expect(queuedJobsRefusal({}, 1000)).toBeUndefined();
    expect(queuedJobsRefusal({ queuedJobs: 2 }, 2)).toMatchObject({ status: 429, code: "too_many_queued_jobs" });
    expect(queuedJobsRefusal({ queuedJobs: 0 }, 0)?.status).toBe(429);
  });

  it("running jobs: one more may start while fewer than the limit train", () => {
    expect(mayStartTraining({ runningJobs: 2 }, 1)).toBe(true);
    expect(mayStartTraining({ runningJobs: 2 }, 2)).toBe(false);
    expect(mayStartTraining({}, 50)).toBe(true);
  });
});

describe("FineTuning.mayStart", () => {
  it("counts the running jobs of the job's own tenant, not its own nor other tenants'", async () => {
    const tenants = new Tenants(config("tenants:\n  limits: {running_jobs: 1}").tenants);
    const ft = new FineTuning({
      dataDir: mkdtempSync(join(tmpdir(), "roundhouse-tenants-")),
      llama: await testRuntime(),
      logger: pino({ level: "silent" }),
      threads: 1,
      trainable: () => undefined,
      resolveModel: () => undefined,
      serving: { serve: () => true, unserve: async () => {} },
      tenants,
    });
    const job = async (id: string, tenant: string, status: FineTuningJob["status"]) => {
      await ft.jobs.create({ ...JOB, id, status });
      await ft.owners.set(id, tenant);
    };
    await job("ftjob-a1", ALICE, "running");
    await job("ftjob-a2", ALICE, "queued");
    await job("ftjob-b1", BOB, "queued");
    await job("ftjob-b0", BOB, "succeeded");
    // Alice trains one already; her own running job may go on (a redelivered job asks again).
    expect(await ft.mayStart("ftjob-a2")).toBe(false);
    expect(await ft.mayStart("ftjob-a1")).toBe(true);
    expect(await ft.mayStart("ftjob-b1")).toBe(true);
    await ft.close();
  });
});

const JOB: FineTuningJob = {
  id: "",
  object: "fine_tuning.job",
  created_at: 0,
  model: "roundhouse-tiny",
  status: "queued",
  error: null,
  fine_tuned_model: null,
  finished_at: null,
  estimated_finish: null,
  organization_id: "org-roundhouse",
  result_files: [],
  trained_tokens: null,
  training_file: "file-abc",
  validation_file: null,
  hyperparameters: { n_epochs: 1, batch_size: 1, learning_rate_multiplier: 1 },
  method: {
    type: "supervised",
    supervised: { hyperparameters: { n_epochs: 1, batch_size: 1, learning_rate_multiplier: 1 } },
  },
  seed: 1,
  metadata: null,
  integrations: null,
  user_provided_suffix: null,
};
