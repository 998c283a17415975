// Durable fine-tuning jobs under DATA_DIR/finetune: one JSON file per job (rewritten
// atomically), an append-only JSONL event log per job, and a JSON list of each job's
// checkpoints. Reads always go to disk, so a server and `npm run worker` processes
// sharing DATA_DIR see each other's changes.
import { join } from "node:path";
import { appendJsonLine, JsonDir, readJsonFile, readJsonLines, writeJsonAtomic } from "../storage/durable.ts";
import { isId, newId } from "./ids.ts";
import { type JobError, type JobState, type JobStatus, transition } from "./state.ts";

export interface Hyperparameters {
  n_epochs: number;
  learning_rate_multiplier: number;
  batch_size: number;
}

/** OpenAI's `fine_tuning.job` object, as served. */
export interface FineTuningJob extends JobState {
  id: string;
  object: "fine_tuning.job";
  created_at: number;
  model: string;
  fine_tuned_model: string | null;
  organization_id: string;
  result_files: string[];
  trained_tokens: number | null;
  training_file: string;
  validation_file: string | null;
  hyperparameters: Hyperparameters;
  method: { type: "supervised"; supervised: { hyperparameters: Hyperparameters } };
  seed: number;
  metadata: Record<string, string> | null;
  integrations: null;
  user_provided_suffix: string | null;
}

/** What is stored: the served object plus what only the worker needs. */
export interface JobRecord {
  job: FineTuningJob;
  created_ms: number;
}

export interface JobEvent {
  id: string;
  object: "fine_tuning.job.event";
  created_at: number;
  level: "info" | "warn" | "error";
  message: string;
  type: "message" | "metrics";
  data: Record<string, unknown>;
}

export interface CheckpointMetrics {
  step: number;
  train_loss: number;
  train_mean_token_accuracy: number;
  valid_loss?: number;
  valid_mean_token_accuracy?: number;
  full_valid_loss?: number;
  full_valid_mean_token_accuracy?: number;
}

export interface Checkpoint {
  id: string;
  object: "fine_tuning.job.checkpoint";
  created_at: number;
  fine_tuned_model_checkpoint: string;
  fine_tuning_job_id: string;
  step_number: number;
  metrics: CheckpointMetrics;
}

/** A checkpoint as stored: which epoch it ends and where its F32 weights are (while kept). */
export interface StoredCheckpoint {
  checkpoint: Checkpoint;
  epoch: number;
  /** Training windows seen up to this checkpoint. */
  trained_tokens: number;
  file: string | null;
}

export class JobStore {
  private readonly jobs: JsonDir<JobRecord>;
  /** One promise chain per job, so read-modify-write updates in this process never interleave. */
  private readonly locks = new Map<string, Promise<unknown>>();
  private lastMs = 0;

  constructor(readonly root: string) {
    this.jobs = new JsonDir(join(root, "jobs"));
  }

  workDir(id: string): string {
    return join(this.root, "work", id);
  }

  async create(job: FineTuningJob): Promise<FineTuningJob> {
    this.lastMs = Math.max(Date.now(), this.lastMs + 1);
    await this.jobs.put(job.id, { job, created_ms: this.lastMs });
    return job;
  }

  async get(id: string): Promise<FineTuningJob | undefined> {
    return isId("job", id) ? (await this.jobs.get(id))?.job : undefined;
  }

  /** Oldest first. */
  async list(): Promise<FineTuningJob[]> {
    const all = await this.jobs.all();
    return all.sort((a, b) => a.created_ms - b.created_ms || a.job.id.localeCompare(b.job.id)).map((r) => r.job);
  }

  /** Applies `edit` to the stored job under this job's lock; `edit` returning undefined leaves it unchanged. */
  update(id: string, edit: (job: FineTuningJob) => FineTuningJob | undefined): Promise<FineTuningJob | undefined> {
    return this.locked(id, async () => {
      const record = await this.jobs.get(id);
      if (!record) return undefined;
      const next = edit(record.job);
      if (next === undefined) return record.job;
      await this.jobs.put(id, { ...record, job: next });
      return next;
    });
  }

  /**
   * Moves the job to `to` and records the event, if the move is legal from its stored status;
   * returns undefined (and changes nothing) if not, e.g. a job cancelled while its trainer finished.
   */
  async transition(
    id: string,
    to: JobStatus,
    input: { error?: JobError; message?: string; patch?: Partial<FineTuningJob> } = {},
  ): Promise<FineTuningJob | undefined> {
    let event: { level: JobEvent["level"]; message: string } | undefined;
    let moved: FineTuningJob | undefined;
    await this.update(id, (job) => {
      try {
        const result = transition(job, to, { now: nowSeconds(), ...input });
        event = result.event;
        moved = { ...result.job, ...input.patch };
        return moved;
      } catch {
        return undefined;
      }
    });
    if (moved && event) await this.addEvent(id, { ...event, type: "message", data: { status: to } });
    return moved;
  }

  async addEvent(id: string, input: Pick<JobEvent, "level" | "message" | "type" | "data">): Promise<JobEvent> {
    const event: JobEvent = {
      id: newId("event"),
      object: "fine_tuning.job.event",
      created_at: nowSeconds(),
      ...input,
    };
    await appendJsonLine(join(this.root, "events", `${id}.jsonl`), event);
    return event;
  }

  /** Oldest first. */
  events(id: string): Promise<JobEvent[]> {
    return readJsonLines<JobEvent>(join(this.root, "events", `${id}.jsonl`));
  }

  async checkpoints(id: string): Promise<StoredCheckpoint[]> {
    return (await readJsonFile<StoredCheckpoint[]>(this.checkpointsPath(id))) ?? [];
  }

  setCheckpoints(id: string, list: StoredCheckpoint[]): Promise<void> {
    return this.locked(`${id}:checkpoints`, () => writeJsonAtomic(this.checkpointsPath(id), list));
  }

  private checkpointsPath(id: string): string {
    return join(this.root, "checkpoints", `${id}.json`);
  }

  private locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const settled = run.catch(() => {});
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return run;
  }
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}
