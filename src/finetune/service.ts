// Fine-tuning as one service: the files store, the durable jobs, the queue that runs
// them and the fine-tuned models they register. Routes call this; it throws OpenAI
// API errors for what a client got wrong.
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { Llama, LlamaModel } from "node-llama-cpp";
import type { Logger } from "pino";
import type { TenantLimitsConfig } from "../config/load.ts";
import {
  ApiError,
  invalidRequest,
  modelNotFound,
  notFound,
  unsupportedParameter,
  unsupportedValue,
} from "../openai/errors.ts";
import type { CreateFineTuningJobRequest, Hyperparameters as RequestedHyperparameters } from "../openai/fine-tuning.ts";
import { mayStartTraining, queuedJobsRefusal, storageRefusal, type Tenants } from "../security/tenants.ts";
import { describeMemory, formatBytes } from "./estimate.ts";
import { evaluateModel } from "./evaluate.ts";
import { FileStore } from "./files.ts";
import { newId } from "./ids.ts";
import {
  type Checkpoint,
  type FineTuningJob,
  type Hyperparameters,
  type JobEvent,
  JobStore,
  nowSeconds,
} from "./jobs.ts";
import { machineMemoryBytes } from "./machine.ts";
import { Owners, type Viewer } from "./owners.ts";
import { modelText, trainerWindow } from "./prepare.ts";
import { InProcessQueue, type JobQueue, RedisQueue } from "./queue.ts";
import { FineTunedModels, type ServingHooks } from "./registry.ts";
import { JobRunner, type TrainableModel } from "./runner.ts";
import { isTerminal, JOB_STATUSES, type JobStatus } from "./state.ts";

/** Tokens of context an evaluation makes: held-out examples longer than it are skipped. */
const EVALUATION_CONTEXT = 4096;

/** A job that waits to train: what tenants.limits.queued_jobs counts. */
const WAITING: readonly JobStatus[] = ["validating_files", "queued"];

/** n_epochs when the request says "auto". */
export const AUTO_EPOCHS = 3;
/** Restarts a running job survives before it is failed: a job that kills its process must not loop. */
const MAX_RESUMES = 2;

export interface FineTuningOptions {
  dataDir: string;
  llama: Llama;
  logger: Logger;
  /** Configured models (by id) that may be fine-tuned. */
  trainable(modelId: string): TrainableModel | undefined;
  /** Resolves a client's model name (id or alias) to a configured id. */
  resolveModel(name: string): string | undefined;
  serving: ServingHooks;
  threads: number;
  /** BullMQ queue in this Redis; in-process when undefined. */
  redisUrl?: string | undefined;
  /** Job counts by status, for the metrics gauge. */
  gauge?(counts: Record<string, number>): void;
  /** Memory a trainer may use; the machine's (or its cgroup's) when unset. */
  memoryLimitBytes?: number | undefined;
  /** Tenants' limits (tenants.limits in models.yaml); none when unset. */
  tenants?: Tenants | undefined;
}

/** Who creates a job: the tenant that will own it, and whose files it may name. */
export interface JobCreator {
  tenant: string;
  viewer: Viewer;
}

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

export class FineTuning {
  readonly files: FileStore;
  readonly jobs: JobStore;
  /** The tenant of each job (and so of its events, checkpoints, results file and model). */
  readonly owners: Owners;
  readonly models: FineTunedModels;
  readonly runner: JobRunner;
  readonly queue: JobQueue;
  private readonly tokenizers = new Map<string, Promise<LlamaModel>>();
  private readonly pending = new Set<Promise<unknown>>();
  private syncTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: FineTuningOptions) {
    const root = join(opts.dataDir, "finetune");
    this.files = new FileStore(join(opts.dataDir, "files"));
    this.jobs = new JobStore(root);
    this.owners = new Owners(root);
    this.models = new FineTunedModels(root, opts.serving);
    this.runner = new JobRunner({
      store: this.jobs,
      files: this.files,
      root,
      trainable: opts.trainable,
      countTokens: (path, text) => this.countTokens(path, text),
      ownerOf: (jobId) => this.owners.of(jobId),
      register: (record) => this.models.register(record),
      unregister: async (id) => {
        await this.models.delete(id);
      },
      threads: opts.threads,
      logger: opts.logger,
      changed: () => this.track(this.updateGauge()),
      evaluate: async (path, cases, model, signal) => {
        const text = await modelText(model.path, model.chatTemplate);
        return evaluateModel(opts.llama, path, cases, text, {
          // As serving's default, one core left free: with every core busy, llama.cpp's threads
          // wait on each other (12 examples of the tiny model: 0.5 s on 1 thread, 10-20 s on 2
          // threads of a 2-core machine under load).
          threads: Math.max(1, Math.min(opts.threads, availableParallelism() - 1)),
          contextSize: Math.min(text.contextLength, EVALUATION_CONTEXT),
          signal,
        });
      },
    });
    this.queue = opts.redisUrl
      ? new RedisQueue(opts.redisUrl)
      : new InProcessQueue((id, signal) => this.runner.train(id, signal), opts.logger);
  }

  /**
   * Serves the registered models and picks up jobs a previous process left: those still
   * validating are validated again, queued ones re-queued, and (in-process) running ones
   * resumed from their last checkpoint, or failed after too many restarts.
   */
  async start(): Promise<void> {
    await this.files.removeStaleIncoming();
    await this.models.sync();
    for (const job of await this.jobs.list()) {
      if (job.status === "validating_files") this.track(this.validateAndQueue(job.id));
      else if (job.status === "queued") await this.queue.enqueue(job.id);
      else if (job.status === "running" && this.queue.kind === "in-process") await this.resume(job);
    }
    await this.updateGauge();
    if (this.queue.kind === "redis") {
      // Workers register models in the shared DATA_DIR: serve them soon after they appear.
      this.syncTimer = setInterval(() => this.track(this.models.sync().then(() => this.updateGauge())), 2000);
      this.syncTimer.unref();
    }
  }

  private async resume(job: FineTuningJob): Promise<void> {
    const events = await this.jobs.events(job.id);
    const resumes = events.filter((e) => e.data.resumed === true).length;
    if (resumes >= MAX_RESUMES) {
      await this.jobs.transition(job.id, "failed", {
        error: {
          code: "server_restarted",
          message: `The server stopped ${resumes + 1} times while this job was training; it was not resumed again.`,
          param: null,
        },
      });
      return;
    }
    const last = (await this.jobs.checkpoints(job.id)).at(-1);
    const from = last?.file ? `its checkpoint at step ${last.checkpoint.step_number}` : "the beginning";
    const moved = await this.jobs.transition(job.id, "queued", {
      message: `The server restarted while this job was running; it resumes from ${from}`,
    });
    if (moved) {
      await this.jobs.addEvent(job.id, {
        level: "info",
        message: "Job re-queued",
        type: "message",
        data: { resumed: true },
      });
      await this.queue.enqueue(job.id);
    }
  }

  /**
   * Serves `name` if it is a fine-tuned model another process registered since the last sync
   * (a worker, or a replica deleting one, in the shared DATA_DIR). Replicas sync every 2 s, but a
   * client that saw its job succeed, on any replica, may ask this one at once: never a 404 then.
   */
  async ensureServed(name: string): Promise<void> {
    if (name.startsWith("ft:") && !this.models.isServed(name)) await this.models.sync();
  }

  /** `creator.tenant` owns the job; the files it names must be ones it can see. */
  async createJob(req: CreateFineTuningJobRequest, creator: JobCreator): Promise<FineTuningJob> {
    const { tenant, viewer } = creator;
    if (req.integrations && req.integrations.length > 0) {
      throw unsupportedParameter(
        "integrations",
        "(Weights & Biases and other integrations) is not supported by this server",
      );
    }
    if (req.method && req.method.type !== "supervised") {
      throw unsupportedValue("method.type", `only "supervised" fine-tuning is supported, got "${req.method.type}".`);
    }
    if (req.method?.supervised?.hyperparameters && req.hyperparameters) {
      throw invalidRequest(
        "Give hyperparameters either in method.supervised.hyperparameters or at the top level, not both.",
        "hyperparameters",
      );
    }
    const modelId = this.opts.resolveModel(req.model);
    if (modelId === undefined) throw modelNotFound(req.model);
    const trainable = this.opts.trainable(modelId);
    if (!trainable) {
      throw invalidRequest(
        `Model ${req.model} cannot be fine-tuned: it has no trainable base. Add a \`finetune:\` section to it in models.yaml.`,
        "model",
        "model_not_trainable",
      );
    }
    await this.checkFits(req.model, trainable);
    await this.checkFile(req.training_file, "training_file", viewer);
    if (req.validation_file) await this.checkFile(req.validation_file, "validation_file", viewer);
    // The tenant's jobs are read only when a limit asks for their count.
    const limits = this.limits(tenant);
    if (limits.queuedJobs !== undefined) {
      const refused = queuedJobsRefusal(limits, await this.countJobs(tenant, WAITING));
      if (refused) throw refused;
    }
    const hyperparameters = resolveHyperparameters(req.method?.supervised?.hyperparameters ?? req.hyperparameters);
    const job: FineTuningJob = {
      id: newId("job"),
      object: "fine_tuning.job",
      created_at: nowSeconds(),
      model: modelId,
      status: "validating_files",
      error: null,
      fine_tuned_model: null,
      finished_at: null,
      estimated_finish: null,
      organization_id: "org-roundhouse",
      result_files: [],
      trained_tokens: null,
      training_file: req.training_file,
      validation_file: req.validation_file ?? null,
      hyperparameters,
      method: { type: "supervised", supervised: { hyperparameters } },
      seed: req.seed ?? Math.floor(Math.random() * 2_147_483_647),
      metadata: req.metadata ?? null,
      integrations: null,
      user_provided_suffix: req.suffix ?? null,
    };
    // Owned before it exists: no moment when another tenant could see it.
    await this.owners.set(job.id, tenant);
    await this.jobs.create(job);
    await this.jobs.addEvent(job.id, {
      level: "info",
      message: `Created fine-tuning job: ${job.id}`,
      type: "message",
      data: {},
    });
    this.track(this.validateAndQueue(job.id));
    await this.updateGauge();
    return job;
  }

  /** Refuses a model whose training cannot fit in memory, before anything runs. */
  private async checkFits(name: string, model: TrainableModel): Promise<void> {
    // A command trainer runs where its operator put it (a GPU worker): this machine's memory says nothing.
    if (model.finetune.trainer) return;
    // An unreadable weights file is reported by the job itself (invalid_model), as before.
    const estimate = await this.runner.estimate(model).catch(() => undefined);
    if (!estimate) return;
    const limit = this.opts.memoryLimitBytes ?? (await machineMemoryBytes());
    if (estimate.memory.total <= limit) return;
    throw invalidRequest(
      `Model ${name} cannot be fine-tuned on this machine: training it with ${trainerWindow(model.finetune.context)}-token windows needs about ${describeMemory(estimate.memory)}, and the machine has ${formatBytes(limit)}. Lower finetune.context in models.yaml, or train it with a trainer on a machine with more memory.`,
      "model",
      "insufficient_memory",
    );
  }

  private limits(tenant: string): TenantLimitsConfig {
    return this.opts.tenants?.limits(tenant) ?? {};
  }

  /** How many of `tenant`'s jobs are in one of `statuses` (`except` left out). */
  private async countJobs(tenant: string, statuses: readonly JobStatus[], except?: string): Promise<number> {
    const jobs = (await this.jobs.list()).filter((j) => statuses.includes(j.status) && j.id !== except);
    const owners = await Promise.all(jobs.map((j) => this.owners.of(j.id)));
    return owners.filter((owner) => owner === tenant).length;
  }

  /**
   * Whether job `id` may start training now: its tenant's other jobs training stay under
   * tenants.limits.running_jobs. BullMQ workers ask before they train (in-process training runs
   * one job at a time, which no limit is below).
   */
  async mayStart(id: string): Promise<boolean> {
    const tenant = await this.owners.of(id);
    const limits = tenant === undefined ? {} : this.limits(tenant);
    if (tenant === undefined || limits.runningJobs === undefined) return true;
    return mayStartTraining(limits, await this.countJobs(tenant, ["running"], id));
  }

  /**
   * Refuses an upload of `adding` bytes that would bring its tenant's files past
   * tenants.limits.stored_bytes. Checked once the upload is on disk, before it is stored, so its
   * real size counts. Uploads in flight at once may each pass: the overshoot is bounded by
   * limits.max_concurrent_uploads × limits.max_upload.
   */
  async checkStorage(tenant: string, adding: number): Promise<void> {
    const limits = this.limits(tenant);
    if (limits.storedBytes === undefined) return;
    const stored = (await this.files.list(undefined, tenant)).reduce((sum, f) => sum + f.bytes, 0);
    const refused = storageRefusal(limits, stored + adding);
    if (refused) throw refused;
  }

  private async validateAndQueue(id: string): Promise<void> {
    if (await this.runner.validate(id)) await this.queue.enqueue(id);
  }

  private async checkFile(id: string, param: string, viewer: Viewer): Promise<void> {
    const file = await this.files.get(id, viewer);
    if (!file) throw new ApiError(400, `Invalid file ID: ${id}. No such file.`, { param, code: "invalid_file_id" });
    if (file.purpose !== "fine-tune") {
      throw invalidRequest(
        `File ${id} has purpose "${file.purpose}"; fine-tuning needs a file uploaded with purpose "fine-tune".`,
        param,
        "invalid_file_purpose",
      );
    }
  }

  /**
   * Deletes an uploaded file, unless a job that has not ended trains or validates on it: that
   * is a 409 naming the job (a running job keeps its own copy, but a queued one reads the file).
   */
  async deleteFile(id: string, viewer: Viewer): Promise<boolean> {
    if (!(await this.files.get(id, viewer))) return false;
    for (const job of await this.jobs.list()) {
      if (isTerminal(job.status)) continue;
      const param = job.training_file === id ? "training_file" : job.validation_file === id ? "validation_file" : null;
      if (param === null) continue;
      throw new ApiError(
        409,
        `File ${id} is the ${param} of fine-tuning job ${job.id}, which is ${job.status}. Cancel the job or wait until it ends, then delete the file.`,
        { param: "file_id", code: "file_in_use" },
      );
    }
    return this.files.delete(id, viewer);
  }

  /** Another tenant's job is not found, exactly like one that does not exist. */
  async getJob(id: string, viewer: Viewer): Promise<FineTuningJob> {
    const job = await this.jobs.get(id);
    if (!job || !(await this.owners.sees(id, viewer))) {
      throw notFound(`No fine-tuning job found with id ${id}.`, "fine_tuning_job_id");
    }
    return job;
  }

  /** Whether `viewer` may see (serve, list, delete) model `id`: a fine-tuned model is its job's tenant's. */
  async modelVisible(id: string, viewer: Viewer): Promise<boolean> {
    const job = this.models.jobOf(id);
    return job === undefined || (await this.owners.sees(job, viewer));
  }

  /** Newest first, as OpenAI lists them; `after` is the id of the last job of the previous page. */
  async listJobs(
    q: {
      after?: string | undefined;
      limit: number;
      metadata?: Record<string, string> | null;
    },
    viewer: Viewer,
  ): Promise<Page<FineTuningJob>> {
    let jobs = (await this.jobs.list()).reverse();
    if (viewer !== undefined) {
      const seen = await Promise.all(jobs.map((j) => this.owners.sees(j.id, viewer)));
      jobs = jobs.filter((_, i) => seen[i]);
    }
    const filter = q.metadata;
    if (filter === null) jobs = jobs.filter((j) => j.metadata === null || Object.keys(j.metadata).length === 0);
    else if (filter) jobs = jobs.filter((j) => Object.entries(filter).every(([k, v]) => j.metadata?.[k] === v));
    return page(jobs, q.after, q.limit, (j) => j.id);
  }

  /** Stops the job at once: a waiting job leaves the queue, a training one's trainer is killed. */
  async cancel(id: string, viewer: Viewer): Promise<FineTuningJob> {
    const job = await this.getJob(id, viewer);
    if (isTerminal(job.status)) {
      throw invalidRequest(
        `Job ${id} has already ${job.status === "succeeded" ? "succeeded" : job.status}; it cannot be cancelled.`,
        null,
        "job_not_cancellable",
      );
    }
    const cancelled = await this.jobs.transition(id, "cancelled");
    await this.queue.stop(id);
    await this.updateGauge();
    return cancelled ?? (await this.getJob(id, viewer));
  }

  async events(id: string, q: { after?: string | undefined; limit: number }, viewer: Viewer): Promise<Page<JobEvent>> {
    await this.getJob(id, viewer);
    const events = (await this.jobs.events(id)).reverse();
    return page(events, q.after, q.limit, (e) => e.id);
  }

  async checkpoints(
    id: string,
    q: { after?: string | undefined; limit: number },
    viewer: Viewer,
  ): Promise<Page<Checkpoint>> {
    await this.getJob(id, viewer);
    const list = (await this.jobs.checkpoints(id)).map((c) => c.checkpoint).reverse();
    return page(list, q.after, q.limit, (c) => c.id);
  }

  /** Tokens llama-finetune will count: the model's own tokenizer (vocabulary only), special tokens parsed, plus BOS. */
  private async countTokens(path: string, text: string): Promise<number> {
    let model = this.tokenizers.get(path);
    if (!model) {
      model = this.opts.llama.loadModel({ modelPath: path, vocabOnly: true });
      this.tokenizers.set(path, model);
    }
    return (await model).tokenize(text, true).length + 1;
  }

  private async updateGauge(): Promise<void> {
    if (!this.opts.gauge) return;
    const counts: Record<string, number> = Object.fromEntries(JOB_STATUSES.map((s) => [s, 0]));
    for (const job of await this.jobs.list()) counts[job.status] = (counts[job.status] ?? 0) + 1;
    this.opts.gauge(counts);
  }

  private track(p: Promise<unknown>): void {
    const tracked = p.catch((err: unknown) => this.opts.logger.error({ err }, "fine-tuning task failed"));
    this.pending.add(tracked);
    void tracked.finally(() => this.pending.delete(tracked));
  }

  /** Stops training (a running job resumes at the next start) and releases the tokenizers. */
  async close(): Promise<void> {
    clearInterval(this.syncTimer);
    await this.queue.close();
    await Promise.allSettled([...this.pending]);
    for (const model of this.tokenizers.values()) await (await model.catch(() => undefined))?.dispose();
    this.tokenizers.clear();
  }
}

export function resolveHyperparameters(h: RequestedHyperparameters | undefined): Hyperparameters {
  const batch = h?.batch_size;
  if (typeof batch === "number" && batch !== 1) {
    throw unsupportedValue(
      "hyperparameters.batch_size",
      `batch_size ${batch} is not supported: llama-finetune takes one optimizer step per training window, so batch_size must be 1 or "auto".`,
    );
  }
  return {
    n_epochs: typeof h?.n_epochs === "number" ? h.n_epochs : AUTO_EPOCHS,
    learning_rate_multiplier: typeof h?.learning_rate_multiplier === "number" ? h.learning_rate_multiplier : 1,
    batch_size: 1,
  };
}

function page<T>(items: T[], after: string | undefined, limit: number, id: (item: T) => string): Page<T> {
  let start = 0;
  if (after !== undefined) {
    const i = items.findIndex((item) => id(item) === after);
    // An unknown cursor yields an empty page rather than starting over from the top.
    start = i < 0 ? items.length : i + 1;
  }
  const data = items.slice(start, start + limit);
  return { data, has_more: start + limit < items.length };
}
