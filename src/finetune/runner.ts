// Runs one fine-tuning job end to end: checks its files (validating_files → queued),
// then trains (queued → running → succeeded | failed): llama-finetune one epoch per
// run, each epoch's output a checkpoint and the next epoch's input; then metadata
// repair, quantization, a results CSV and registration of the ft: model. The same
// code runs in the server (in-process queue) and in `npm run worker` (BullMQ).

import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import type { Logger } from "pino";
import { readGguf } from "../engine/gguf.ts";
import { withoutPaths } from "../openai/redact.ts";
import { writeFileAtomic } from "../storage/durable.ts";
import { commandFinetune, type TrainerCommand } from "./command-trainer.ts";
import type { Example } from "./dataset.ts";
import {
  describeMemory,
  type EstimateFigures,
  epochSeconds,
  estimateTraining,
  formatDuration,
  modelShape,
  type TrainingEstimate,
} from "./estimate.ts";
import {
  describeEvaluation,
  type EvalCase,
  type EvalSet,
  type Evaluation,
  type EvaluationRow,
  evaluationCsv,
  improved,
  pickCases,
  splitForEvaluation,
  verdict,
} from "./evaluate.ts";
import type { FileStore } from "./files.ts";
import { newId } from "./ids.ts";
import type { FineTuningJob, JobStore, StoredCheckpoint } from "./jobs.ts";
import { nowSeconds } from "./jobs.ts";
import {
  type EpochResult,
  type FinetuneOptions,
  finetune,
  type QuantType,
  quantize,
  restoreMetadata,
  type StepProgress,
  stopLeftoverTrainer,
  TextTooShortError,
  TrainerAbortedError,
} from "./llama-finetune.ts";
import {
  examplesOf,
  minimumTokens,
  modelText,
  planWindows,
  renderExamples,
  trainerWindow,
  type WindowPlan,
} from "./prepare.ts";
import type { JobError } from "./state.ts";
import { stripPaths, ToolFailedError } from "./trainer-failure.ts";

/** A configured model that fine-tuning jobs may train. */
export interface TrainableModel {
  id: string;
  /** The served GGUF: its template, BOS and context length describe the text. */
  path: string;
  chatTemplate?: string | undefined;
  finetune: {
    base?: string | undefined;
    quantize: QuantType;
    learning_rate: number;
    context: number;
    /** A command trainer (finetune.trainer.command); llama-finetune when unset. */
    trainer?: TrainerCommand | undefined;
  };
}

export interface FineTunedModelRecord {
  id: string;
  base: string;
  job_id: string;
  path: string;
  created: number;
}

export interface RunnerDeps {
  store: JobStore;
  files: FileStore;
  /** Folder for derived bases, work files and trained models (DATA_DIR/finetune). */
  root: string;
  trainable(modelId: string): TrainableModel | undefined;
  /** Tokens llama-finetune will see for `text` with `modelPath`'s tokenizer (BOS included). */
  countTokens(modelPath: string, text: string): Promise<number>;
  register(model: FineTunedModelRecord): Promise<void>;
  /** The tenant that owns a job: its results file is that tenant's too. */
  ownerOf(jobId: string): Promise<string | undefined>;
  unregister(id: string): Promise<void>;
  threads: number;
  logger: Logger;
  /** Called after every status change (metrics). */
  changed?(): void;
  /** Scores held-out examples with the GGUF at `path` (evaluate.ts); jobs are not evaluated without it. */
  evaluate?(path: string, cases: readonly EvalCase[], model: TrainableModel, signal: AbortSignal): Promise<Evaluation>;
}

/** A failure to report on the job as its `error`. */
export class JobFailure extends Error {
  constructor(readonly error: JobError) {
    super(error.message);
  }
}

interface Prepared {
  model: TrainableModel;
  text: string;
  plan: WindowPlan;
  templateSource: string;
  contextLength: number;
  /** The examples every evaluation of the job scores. */
  evaluation: EvalSet;
}

/** What a job keeps of its prepared data in its work folder (beside train.txt), so a resume needs no file. */
type SavedPreparation = Omit<Prepared, "model" | "text">;

const PREPARED_FILE = "prepared.json";
/** The job's evaluations so far (evaluate.ts), kept beside its checkpoints so a resume does not redo them. */
const EVALUATIONS_FILE = "evaluations.json";
const EVENT_INTERVAL_MS = 1000;
const ESTIMATE_INTERVAL_MS = 5000;

export class JobRunner {
  constructor(private readonly deps: RunnerDeps) {}

  /** validating_files → queued (true) or failed (false). */
  async validate(jobId: string): Promise<boolean> {
    const job = await this.deps.store.get(jobId);
    if (job?.status !== "validating_files") return job?.status === "queued";
    try {
      const prepared = await this.prepare(job);
      await this.estimateEvent(jobId, prepared);
      const moved = await this.deps.store.transition(jobId, "queued", {
        message: `Files validated: ${prepared.plan.trainWindows} training and ${prepared.plan.valWindows} validation windows of ${trainerWindow(prepared.model.finetune.context)} tokens; job queued`,
      });
      this.deps.changed?.();
      return moved !== undefined;
    } catch (err) {
      await this.fail(jobId, err);
      return false;
    }
  }

  /**
   * Trains a queued job (or one whose previous run died: it resumes after its last checkpoint).
   * `signal` aborts it: the trainer is killed and its work folder removed.
   */
  async train(jobId: string, signal: AbortSignal): Promise<void> {
    const { store } = this.deps;
    let job = await store.get(jobId);
    if (!job) return;
    if (job.status === "queued") {
      job = await store.transition(jobId, "running", { patch: { estimated_finish: null } });
      this.deps.changed?.();
    } else if (job.status !== "running") {
      return;
    }
    if (!job) return;
    const work = store.workDir(jobId);
    try {
      await this.runTraining(job, work, signal);
    } catch (err) {
      if (signal.aborted || err instanceof TrainerAbortedError) {
        // Cancelled (or shutting down): whoever aborted set the status; leave no partial model.
        if ((await store.get(jobId))?.status === "cancelled") await rm(work, { recursive: true, force: true });
        return;
      }
      await this.fail(jobId, err);
      await rm(work, { recursive: true, force: true });
    }
  }

  private async runTraining(job: FineTuningJob, work: string, signal: AbortSignal): Promise<void> {
    const { store } = this.deps;
    const textFile = join(work, "train.txt");
    // The job's own copy of its rendered data: a resume trains on it, so deleting the training
    // file (or losing it) never fails a job that has started.
    const prepared = (await this.savedPreparation(job, work)) ?? (await this.prepare(job));
    const { model, plan } = prepared;
    const context = trainerWindow(model.finetune.context);
    const epochs = job.hyperparameters.n_epochs;
    const peakLr = model.finetune.learning_rate * job.hyperparameters.learning_rate_multiplier;
    await mkdir(work, { recursive: true });
    await writeFile(textFile, prepared.text);
    const saved: SavedPreparation = {
      plan,
      templateSource: prepared.templateSource,
      contextLength: prepared.contextLength,
      evaluation: prepared.evaluation,
    };
    // Written after the text: its presence says the text beside it is complete.
    await writeFileAtomic(join(work, PREPARED_FILE), JSON.stringify(saved));
    const base = await this.trainableBase(job.id, model, signal);
    const ftId = fineTunedModelId(model.id, job.user_provided_suffix, job.id);

    // Resume after the last checkpoint whose weights are still on disk.
    const checkpoints = (await store.checkpoints(job.id)).filter((c) => c.epoch < epochs);
    const last = checkpoints.at(-1);
    let input = base;
    let startEpoch = 0;
    if (last?.file && existsSync(last.file)) {
      input = last.file;
      startEpoch = last.epoch + 1;
      await store.addEvent(job.id, {
        level: "info",
        message: `Resuming from the checkpoint at step ${last.checkpoint.step_number} (epoch ${last.epoch + 1}/${epochs})`,
        type: "message",
        data: { step: last.checkpoint.step_number, epoch: last.epoch + 1 },
      });
    }
    const kept = checkpoints.filter((c) => c.epoch < startEpoch);
    // A trainer of this job that a killed server left behind must stop before another starts.
    const pidFile = join(work, "trainer.pid");
    if (await stopLeftoverTrainer(pidFile)) {
      this.deps.logger.warn({ job: job.id }, "stopped a trainer left running by a previous server process");
    }
    const rowsFile = join(work, EVALUATIONS_FILE);
    const rows: EvaluationRow[] = JSON.parse(await readFile(rowsFile, "utf8").catch(() => "[]"));
    /** The evaluation of the weights at `path` after `epoch` epochs (0: the base), made once. */
    const evaluateAt = async (epoch: number, path: string): Promise<EvaluationRow | undefined> => {
      const done = rows.find((r) => r.epoch === epoch);
      if (done) return done;
      const started = performance.now();
      const evaluation = await this.evaluate(job, path, prepared, signal);
      if (!evaluation) return undefined;
      const seconds = round((performance.now() - started) / 1000);
      const row = { ...evaluation, epoch };
      rows.push(row);
      await writeFileAtomic(rowsFile, JSON.stringify(rows));
      await store.addEvent(job.id, {
        level: "info",
        message: `Evaluation ${epoch === 0 ? "of the base model, before training" : `after epoch ${epoch}/${epochs}`}: ${describeEvaluation(evaluation)}`,
        type: "metrics",
        data: { epoch, ...evaluationMetrics(evaluation), held_out: prepared.evaluation.heldOut, seconds },
      });
      return row;
    };
    await evaluateAt(0, base);
    const steps: StepRow[] = [];
    // Optimizer steps per epoch, as the trainer's progress bar counts them: a window when the
    // batch is the whole window, more when llama.cpp pads the context past the batch. Windows
    // until the bar says.
    let stepsPerEpoch = plan.trainWindows;
    let lastEvent = 0;
    let lastEstimate = 0;
    let epochSeconds = 0;

    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      signal.throwIfAborted();
      const out = join(work, `epoch-${epoch + 1}.gguf`);
      const started = performance.now();
      let previousMean = { loss: 0, accuracy: 0 };
      const train = model.finetune.trainer;
      const run = train ? (o: FinetuneOptions) => commandFinetune(train, o, { epoch: epoch + 1, epochs }) : finetune;
      const result = await run({
        model: input,
        textFile,
        out,
        // The configured context sets the tokens per optimizer step; the window is padded.
        context: model.finetune.context,
        epochs: 1,
        lr: epochLearningRate(peakLr, epoch, epochs),
        valSplit: plan.valSplit,
        threads: this.deps.threads,
        seed: job.seed + epoch,
        signal,
        onSpawn: (pid) => void writeFile(pidFile, String(pid)).catch(() => {}),
        onStep: (p: StepProgress) => {
          if (p.phase !== "train") return;
          // The bar shows running means; the step's own figure is what the mean moved by.
          const stepLoss = p.step * p.loss - (p.step - 1) * previousMean.loss;
          const stepAccuracy = Math.min(1, Math.max(0, p.step * p.accuracy - (p.step - 1) * previousMean.accuracy));
          previousMean = { loss: p.loss, accuracy: p.accuracy };
          stepsPerEpoch = p.steps;
          const totalSteps = stepsPerEpoch * epochs;
          const step = epoch * stepsPerEpoch + p.step;
          steps.push({ step, loss: stepLoss, accuracy: stepAccuracy });
          const now = performance.now();
          const perEpoch = epochSeconds || p.elapsedSeconds + p.etaSeconds;
          const eta = p.etaSeconds + perEpoch * (epochs - epoch - 1);
          if (now - lastEvent >= EVENT_INTERVAL_MS || p.step === p.steps) {
            lastEvent = now;
            void store.addEvent(job.id, {
              level: "info",
              message: `Step ${step}/${totalSteps}: training loss=${stepLoss.toFixed(4)}`,
              type: "metrics",
              data: {
                step,
                total_steps: totalSteps,
                epoch: epoch + 1,
                n_epochs: epochs,
                train_loss: round(stepLoss),
                train_mean_token_accuracy: round(stepAccuracy),
                epoch_mean_loss: round(p.loss),
                eta_seconds: eta,
              },
            });
          }
          if (now - lastEstimate >= ESTIMATE_INTERVAL_MS) {
            lastEstimate = now;
            void store.update(job.id, (j) =>
              j.status === "running" ? { ...j, estimated_finish: nowSeconds() + Math.round(eta) } : undefined,
            );
          }
        },
      });
      epochSeconds = (performance.now() - started) / 1000;
      const evaluated = await evaluateAt(epoch + 1, out);
      const stored = await this.checkpoint(job, ftId, epoch, { plan, stepsPerEpoch }, context, out, result, evaluated);
      // Only the newest weights are kept on disk: enough to resume, without one model file per epoch.
      for (const c of kept) if (c.file) await rm(c.file, { force: true });
      kept.splice(0, kept.length, ...kept.map((c) => ({ ...c, file: null })), stored);
      await store.setCheckpoints(job.id, kept);
      await store.addEvent(job.id, {
        level: "info",
        message: epochMessage(epoch, epochs, result),
        type: "metrics",
        data: {
          ...stored.checkpoint.metrics,
          epoch: epoch + 1,
          n_epochs: epochs,
          epoch_seconds: round(epochSeconds),
          learning_rate: epochLearningRate(peakLr, epoch, epochs),
        },
      });
      input = out;
    }

    signal.throwIfAborted();
    // Serve what the last epoch made: metadata back, quantized as configured, results attached.
    const modelsDir = join(this.deps.root, "models");
    await mkdir(modelsDir, { recursive: true });
    const restored = join(work, "final-f32.gguf");
    await restoreMetadata(input, restored, {
      chatTemplate: prepared.templateSource,
      contextLength: prepared.contextLength,
      fileType: 0,
      name: ftId,
    });
    const served = join(modelsDir, `${job.id}.gguf`);
    if (model.finetune.quantize === "F32") await copyFile(restored, served);
    else await quantize(restored, served, model.finetune.quantize, this.deps.threads);
    signal.throwIfAborted();
    const owner = await this.deps.ownerOf(job.id);
    const results = await this.deps.files.create({
      filename: "step_metrics.csv",
      purpose: "fine-tune-results",
      bytes: Buffer.from(resultsCsv(steps, kept)),
      owner,
    });
    const before = rows.find((r) => r.epoch === 0);
    const after = rows.find((r) => r.epoch === epochs);
    const evaluationFile =
      rows.length === 0
        ? undefined
        : await this.deps.files.create({
            filename: "evaluation.csv",
            purpose: "fine-tune-results",
            bytes: Buffer.from(
              evaluationCsv(
                [...rows].sort((a, b) => a.epoch - b.epoch),
                prepared.evaluation,
              ),
            ),
            owner,
          });
    if (before && after) {
      await store.addEvent(job.id, {
        level: "info",
        message: verdict(before, after, prepared.evaluation),
        type: "metrics",
        data: {
          improved: improved(before, after),
          held_out: prepared.evaluation.heldOut,
          base: evaluationMetrics(before),
          fine_tuned: evaluationMetrics(after),
        },
      });
    }
    const record: FineTunedModelRecord = {
      id: ftId,
      base: model.id,
      job_id: job.id,
      path: served,
      created: nowSeconds(),
    };
    // Registered before the job says succeeded, so a client that sees it can use it at once.
    await this.deps.register(record);
    const done = await store.transition(job.id, "succeeded", {
      patch: {
        fine_tuned_model: ftId,
        trained_tokens: plan.trainWindows * context * epochs,
        result_files: evaluationFile ? [results.id, evaluationFile.id] : [results.id],
      },
    });
    this.deps.changed?.();
    if (!done) {
      // Cancelled while the model was being written: it never becomes available.
      await this.deps.unregister(ftId);
      await rm(served, { force: true });
      await this.deps.files.delete(results.id);
      if (evaluationFile) await this.deps.files.delete(evaluationFile.id);
    }
    await rm(work, { recursive: true, force: true });
  }

  private async checkpoint(
    job: FineTuningJob,
    ftId: string,
    epoch: number,
    at: { plan: WindowPlan; stepsPerEpoch: number },
    context: number,
    file: string,
    result: EpochResult,
    evaluated: Evaluation | undefined,
  ): Promise<StoredCheckpoint> {
    const step = (epoch + 1) * at.stepsPerEpoch;
    return {
      epoch,
      file,
      trained_tokens: (epoch + 1) * at.plan.trainWindows * context,
      checkpoint: {
        id: newId("checkpoint"),
        object: "fine_tuning.job.checkpoint",
        created_at: nowSeconds(),
        fine_tuned_model_checkpoint: `${ftId}:ckpt-step-${step}`,
        fine_tuning_job_id: job.id,
        step_number: step,
        metrics: {
          step,
          train_loss: round(result.train.loss),
          train_mean_token_accuracy: round(result.train.accuracy),
          ...(result.val
            ? {
                valid_loss: round(result.val.loss),
                valid_mean_token_accuracy: round(result.val.accuracy),
                full_valid_loss: round(result.val.loss),
                full_valid_mean_token_accuracy: round(result.val.accuracy),
              }
            : {}),
          // The evaluation on held-out examples is the full validation set's figures.
          ...(evaluated ? evaluationMetrics(evaluated) : {}),
        },
      },
    };
  }

  /**
   * The held-out examples scored with the weights at `path`; undefined when there is nothing to
   * score or no evaluator. A failed evaluation is an event, not a failed job: the training stands.
   */
  private async evaluate(
    job: FineTuningJob,
    path: string,
    prepared: Prepared,
    signal: AbortSignal,
  ): Promise<Evaluation | undefined> {
    const { cases } = prepared.evaluation;
    if (!this.deps.evaluate || cases.length === 0) return undefined;
    try {
      return await this.deps.evaluate(path, cases, prepared.model, signal);
    } catch (err) {
      signal.throwIfAborted();
      this.deps.logger.warn({ err, job: job.id }, "evaluation failed");
      await this.deps.store.addEvent(job.id, {
        level: "warn",
        message: `Evaluation failed: ${failureReason(err)}`,
        type: "message",
        data: {},
      });
      return undefined;
    }
  }

  /** What training `model` costs per window, from its shape: the weights file's header is all it reads. */
  async estimate(model: TrainableModel): Promise<TrainingEstimate> {
    const file = await readGguf(model.finetune.base ?? model.path);
    return estimateTraining(modelShape(file), {
      window: trainerWindow(model.finetune.context),
      threads: this.deps.threads,
    });
  }

  /** Every job says what it expects to cost before it is queued. */
  private async estimateEvent(jobId: string, prepared: Prepared): Promise<void> {
    const { plan } = prepared;
    // Unreadable weights are the training step's to report (invalid_model, without paths).
    // The estimate describes llama-finetune on this machine's CPUs, not a command trainer: the
    // job says so, and what it will train, instead.
    const command = prepared.model.finetune.trainer;
    if (command) {
      await this.deps.store.addEvent(jobId, {
        level: "info",
        message: `Trained by the trainer command ${basename(command.command[0] ?? "")} (${plan.trainWindows} windows of ${trainerWindow(prepared.model.finetune.context)} tokens per epoch); it runs outside llama-finetune, so no time or memory is estimated here`,
        type: "message",
        data: { trainer: "command", train_windows: plan.trainWindows },
      });
      return;
    }
    const estimate = await this.estimate(prepared.model).catch(() => undefined);
    if (!estimate) return;
    const perEpoch = epochSeconds(estimate, plan.trainWindows, plan.valWindows);
    const data: EstimateFigures = {
      estimated_seconds_per_epoch: Math.round(perEpoch),
      estimated_tokens_per_second: Math.round(estimate.tokensPerSecond),
      estimated_peak_memory_bytes: Math.round(estimate.memory.total),
      estimated_memory: {
        weights: Math.round(estimate.memory.weights),
        gradients: Math.round(estimate.memory.gradients),
        optimizer: Math.round(estimate.memory.optimizer),
        activations: Math.round(estimate.memory.activations),
      },
    };
    await this.deps.store.addEvent(jobId, {
      level: "info",
      message: `Expected ${formatDuration(perEpoch)} per epoch (${plan.trainWindows + plan.valWindows} windows of ${trainerWindow(prepared.model.finetune.context)} tokens at ~${Math.round(estimate.tokensPerSecond)} tokens/s on ${this.deps.threads} thread${this.deps.threads === 1 ? "" : "s"}); peak memory about ${describeMemory(estimate.memory)}`,
      type: "message",
      data: { ...data },
    });
  }

  /** The preparation a previous run of this job saved in its work folder, if it finished saving it. */
  private async savedPreparation(job: FineTuningJob, work: string): Promise<Prepared | undefined> {
    const model = this.deps.trainable(job.model);
    if (!model) return undefined;
    try {
      const saved = JSON.parse(await readFile(join(work, PREPARED_FILE), "utf8")) as Partial<SavedPreparation>;
      const text = await readFile(join(work, "train.txt"), "utf8");
      if (!saved.plan || saved.templateSource === undefined || saved.contextLength === undefined) return undefined;
      // Saved before jobs were evaluated: it resumes without an evaluation.
      const evaluation = saved.evaluation ?? { cases: [], heldOut: false, source: "training_file" };
      return {
        ...saved,
        plan: saved.plan,
        templateSource: saved.templateSource,
        contextLength: saved.contextLength,
        evaluation,
        model,
        text,
      };
    } catch {
      return undefined;
    }
  }

  /** Renders and measures the job's data; a JobFailure names what is wrong with which file. */
  private async prepare(job: FineTuningJob): Promise<Prepared> {
    const model = this.deps.trainable(job.model);
    if (!model) {
      throw new JobFailure({
        code: "invalid_model",
        message: `Model ${job.model} has no trainable base (no finetune: section in models.yaml).`,
        param: "model",
      });
    }
    const text = await modelText(model.path, model.chatTemplate);
    const examples = async (fileId: string, param: string): Promise<Example[]> => {
      const content = await this.deps.files.content(fileId);
      if (!content) {
        throw new JobFailure({ code: "invalid_file", message: `File ${fileId} no longer exists.`, param });
      }
      try {
        return examplesOf(content, fileId);
      } catch (err) {
        throw new JobFailure({ code: "invalid_file", message: (err as Error).message, param });
      }
    };
    const render = (list: readonly Example[], param: string): string => {
      try {
        return renderExamples(list, text, job.seed);
      } catch (err) {
        throw new JobFailure({ code: "invalid_file", message: (err as Error).message, param });
      }
    };
    const training = await examples(job.training_file, "training_file");
    const validation = job.validation_file ? await examples(job.validation_file, "validation_file") : undefined;
    let { train: trainExamples, evaluation } = splitForEvaluation(training, validation);
    let train = render(trainExamples, "training_file");
    let trainTokens = await this.deps.countTokens(model.path, train);
    if (
      trainExamples.length < training.length &&
      planWindows(trainTokens, 0, trainerWindow(model.finetune.context)) === undefined
    ) {
      // Too little text to give any up: evaluate on what it trains on, and say so.
      trainExamples = training;
      evaluation = { cases: pickCases(training), heldOut: false, source: "training_file" };
      train = render(training, "training_file");
      trainTokens = await this.deps.countTokens(model.path, train);
    }
    const val = validation ? render(validation, "validation_file") : "";
    // The validation text follows the training text in one file: no second BOS is added for it.
    const valTokens = val === "" ? 0 : (await this.deps.countTokens(model.path, train + val)) - trainTokens;
    const context = trainerWindow(model.finetune.context);
    const plan = planWindows(trainTokens, valTokens, context);
    if (!plan) {
      const needed = minimumTokens(context);
      throw new JobFailure({
        code: "invalid_training_file",
        message:
          trainTokens < needed
            ? `The training file renders to ${trainTokens} tokens, shorter than one training window: at least ${needed} are needed (windows of ${context} tokens, stepping ${Math.floor(context / 2)}: llama.cpp's trainer pads every context to a multiple of 256). Add examples.`
            : `The validation file renders to ${valTokens} tokens, too few for one validation window of ${context} tokens. Add examples to it.`,
        param: trainTokens < needed ? "training_file" : "validation_file",
      });
    }
    return {
      model,
      text: train + val,
      plan,
      templateSource: text.templateSource,
      contextLength: text.contextLength,
      evaluation,
    };
  }

  /**
   * The F32 weights llama-finetune trains: `finetune.base` when configured, else
   * derived once from the served file (llama-quantize --allow-requantize … F32) and
   * cached under DATA_DIR, keyed on the served file's path, size and date.
   */
  private async trainableBase(jobId: string, model: TrainableModel, signal: AbortSignal): Promise<string> {
    if (model.finetune.base) {
      if (!existsSync(model.finetune.base)) {
        throw new JobFailure({
          code: "invalid_model",
          message: `The trainable base of ${model.id} (${model.finetune.base}) does not exist.`,
          param: "model",
        });
      }
      return model.finetune.base;
    }
    const st = statSync(model.path);
    const key = createHash("sha256").update(`${model.path}\0${st.size}\0${st.mtimeMs}`).digest("hex").slice(0, 12);
    const dir = join(this.deps.root, "bases");
    const path = join(dir, `${model.id.replace(/[^A-Za-z0-9._-]/g, "_")}-${key}-f32.gguf`);
    if (existsSync(path)) return path;
    await mkdir(dir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await quantize(model.path, tmp, "F32", this.deps.threads, { allowRequantize: true });
    signal.throwIfAborted();
    const { rename } = await import("node:fs/promises");
    await rename(tmp, path);
    await this.deps.store.addEvent(jobId, {
      level: "info",
      message: `Derived the trainable F32 weights of ${model.id} from its served file`,
      type: "message",
      data: {},
    });
    return path;
  }

  private async fail(jobId: string, err: unknown): Promise<void> {
    const error: JobError =
      err instanceof JobFailure
        ? err.error
        : err instanceof TextTooShortError
          ? { code: "invalid_training_file", message: err.message, param: "training_file" }
          : { code: "training_failed", message: `Training failed: ${failureReason(err)}`, param: null };
    if (!(err instanceof JobFailure)) {
      // The job's message has no paths; the log keeps the command line and the full stderr tail.
      const detail = err instanceof ToolFailedError ? err.detail : undefined;
      this.deps.logger.error({ err, job: jobId, ...detail }, "fine-tuning job failed");
    }
    // Clients read the job: its error names no path on this server (the trainer's command line,
    // a model file, the tools' folder under a home directory). The log keeps the whole message.
    const shown = withoutPaths(error.message);
    if (shown !== error.message && err instanceof JobFailure) {
      this.deps.logger.warn({ job: jobId, detail: error.message }, "fine-tuning job failed");
    }
    await this.deps.store.transition(jobId, "failed", { error: { ...error, message: shown } });
    this.deps.changed?.();
  }
}

/** `ft:<base>:<suffix>:<8 characters of the job id>`, OpenAI's shape without the organization. */
export function fineTunedModelId(base: string, suffix: string | null, jobId: string): string {
  return `ft:${base}:${suffix ?? ""}:${jobId.slice("ftjob-".length, "ftjob-".length + 8)}`;
}

interface StepRow {
  step: number;
  loss: number;
  accuracy: number;
}

/** OpenAI's results file columns; validation figures on each epoch's last step. */
function resultsCsv(steps: readonly StepRow[], checkpoints: readonly StoredCheckpoint[]): string {
  const lines = ["step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy"];
  const valAt = new Map(checkpoints.map((c) => [c.checkpoint.step_number, c.checkpoint.metrics]));
  for (const s of steps) {
    const v = valAt.get(s.step);
    lines.push(
      [s.step, round(s.loss), round(s.accuracy), v?.valid_loss ?? "", v?.valid_mean_token_accuracy ?? ""].join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The learning rate of epoch `epoch` (0-based) of `epochs`: from the peak, decaying linearly so
 * the job would end at a tenth of it (as fine-tuning schedules decay; llama-finetune runs one
 * epoch per call here, so its own decay cannot span the job). A constant rate left the 115M
 * shape oscillating: exact answers 4/4 after epoch 3 of 8, then 0/4 from epoch 5 on.
 */
export function epochLearningRate(peak: number, epoch: number, epochs: number): number {
  return peak * (1 - (0.9 * epoch) / Math.max(1, epochs));
}

/** An evaluation as checkpoint metrics and event data: the spec's full_valid_* plus perplexity and exact answers. */
function evaluationMetrics(e: Evaluation) {
  return {
    full_valid_loss: round(e.loss),
    full_valid_mean_token_accuracy: round(e.tokenAccuracy),
    full_valid_perplexity: round(e.perplexity),
    full_valid_exact_match: round(e.examples === 0 ? 0 : e.exactMatches / e.examples),
    full_valid_examples: e.examples,
  };
}

function epochMessage(epoch: number, epochs: number, r: EpochResult): string {
  const val = r.val ? `, validation loss ${r.val.loss.toFixed(4)}, accuracy ${(r.val.accuracy * 100).toFixed(1)}%` : "";
  return `Epoch ${epoch + 1}/${epochs} done: training loss ${r.train.loss.toFixed(4)}, accuracy ${(r.train.accuracy * 100).toFixed(1)}%${val}`;
}

function round(x: number): number {
  return Math.round(x * 1e5) / 1e5;
}

/** What a client is told: the tool's own explanation, or an error's first line, without paths. */
function failureReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const line = stripPaths(message.split("\n")[0] ?? "").trim();
  return line === "" ? `an error with no message (${err instanceof Error ? err.name : typeof err})` : line;
}
