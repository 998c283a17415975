// A trainer that is any program (`finetune.trainer: {command: [...]}` in models.yaml): a TRL or
// Unsloth script on a GPU worker, say, while the API, events, checkpoints and serving stay
// Roundhouse's. The runner calls it once per epoch, exactly where it would call llama-finetune.
//
// The contract (README "Fine-tuning: your own trainer"):
// - It runs with the command's working directory the folder of models.yaml and these variables:
//     ROUNDHOUSE_MODEL          the GGUF to start from (F32: the base, or the previous epoch's output)
//     ROUNDHOUSE_TRAINING_TEXT  the examples rendered with the model's chat template, one after another
//     ROUNDHOUSE_OUTPUT         where to write the trained GGUF (F32); the runner quantizes it to serve
//     ROUNDHOUSE_CONTEXT        tokens per optimizer step
//     ROUNDHOUSE_LEARNING_RATE  the learning rate for this epoch
//     ROUNDHOUSE_VAL_SPLIT      the fraction of the text (its end) to hold out for validation
//     ROUNDHOUSE_SEED, ROUNDHOUSE_THREADS, ROUNDHOUSE_EPOCH (1-based), ROUNDHOUSE_N_EPOCHS
// - It reports progress as JSON lines on stdout, any other line being ignored:
//     {"phase":"train","step":3,"steps":10,"loss":1.9,"accuracy":0.41,"elapsed_seconds":12,"eta_seconds":28}
//     ("phase":"val" for validation batches; accuracy is the token accuracy, 0..1, optional)
// - It exits 0 once ROUNDHOUSE_OUTPUT is written. Any other ending fails the job with the last
//   meaningful lines of its stderr, as llama-finetune's failures do. Safetensors are the
//   script's to convert (llama.cpp's convert_hf_to_gguf.py) before it exits.
import { existsSync, rmSync } from "node:fs";
import type { EpochResult, Figures, FinetuneOptions, FinetuneResult, StepProgress } from "./llama-finetune.ts";
import { TrainerAbortedError } from "./llama-finetune.ts";
import { runTrainer, trainerFailed } from "./trainer-process.ts";

/** A command trainer: argv (the program first) and the folder it runs in. */
export interface TrainerCommand {
  command: readonly string[];
  cwd: string;
}

/** Where an epoch stands in the job, for the trainer's own schedule. */
export interface EpochOf {
  epoch: number;
  epochs: number;
}

/**
 * Reads a command trainer's stdout: each JSON progress line is a step; the epoch's result is the
 * last train and val figures. Pure, fed chunk by chunk as they arrive (a line may be split).
 */
export class ProgressLines {
  private rest = "";
  private train: Figures | undefined;
  private val: Figures | undefined;

  constructor(private readonly onStep?: (step: StepProgress) => void) {}

  push(chunk: string): void {
    const lines = (this.rest + chunk).split("\n");
    this.rest = lines.pop() ?? "";
    for (const line of lines) this.line(line);
  }

  /** The epoch's figures once the output ended; undefined when no train line came. */
  end(): EpochResult | undefined {
    this.line(this.rest);
    this.rest = "";
    return this.train && { train: this.train, val: this.val };
  }

  private line(line: string): void {
    const step = parseProgress(line);
    if (!step) return;
    const figures = { loss: step.loss, accuracy: step.accuracy };
    if (step.phase === "train") this.train = figures;
    else this.val = figures;
    this.onStep?.(step);
  }
}

/** One progress line of the contract, or undefined for any other line. */
export function parseProgress(line: string): StepProgress | undefined {
  const text = line.trim();
  if (!text.startsWith("{")) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const num = (key: string, fallback?: number): number | undefined => {
    const n = v[key];
    return typeof n === "number" && Number.isFinite(n) ? n : fallback;
  };
  const phase = v.phase;
  const step = num("step");
  const steps = num("steps");
  const loss = num("loss");
  if ((phase !== "train" && phase !== "val") || step === undefined || steps === undefined || loss === undefined) {
    return undefined;
  }
  return {
    phase,
    step,
    steps,
    loss,
    accuracy: Math.min(1, Math.max(0, num("accuracy", 0) ?? 0)),
    elapsedSeconds: num("elapsed_seconds", 0) ?? 0,
    etaSeconds: num("eta_seconds", 0) ?? 0,
  };
}

/** The variables a command trainer receives (the contract above). */
export function trainerEnvironment(opts: FinetuneOptions, at: EpochOf): Record<string, string> {
  return {
    ROUNDHOUSE_MODEL: opts.model,
    ROUNDHOUSE_TRAINING_TEXT: opts.textFile,
    ROUNDHOUSE_OUTPUT: opts.out,
    ROUNDHOUSE_CONTEXT: String(opts.context),
    ROUNDHOUSE_LEARNING_RATE: String(opts.lr),
    ROUNDHOUSE_VAL_SPLIT: String(opts.valSplit),
    ROUNDHOUSE_SEED: String(opts.seed ?? 0),
    ROUNDHOUSE_THREADS: String(opts.threads),
    ROUNDHOUSE_EPOCH: String(at.epoch),
    ROUNDHOUSE_N_EPOCHS: String(at.epochs),
  };
}

/** Runs one epoch with a command trainer; the same promise and errors as llama-finetune's `finetune`. */
export async function commandFinetune(
  trainer: TrainerCommand,
  opts: FinetuneOptions,
  at: EpochOf,
): Promise<FinetuneResult> {
  const [program, ...args] = trainer.command;
  if (program === undefined) throw new Error("finetune.trainer.command is empty");
  opts.signal?.throwIfAborted();
  const progress = new ProgressLines(opts.onStep);
  const started = performance.now();
  const run = await runTrainer({
    program,
    args,
    cwd: trainer.cwd,
    env: { ...process.env, ...trainerEnvironment(opts, at) },
    signal: opts.signal,
    onSpawn: opts.onSpawn,
    stdout: (chunk) => progress.push(chunk),
  });
  if (run.aborted) {
    rmSync(opts.out, { force: true });
    throw new TrainerAbortedError();
  }
  const result = progress.end();
  if (run.code !== 0 || !existsSync(opts.out)) {
    rmSync(opts.out, { force: true });
    throw trainerFailed(`the trainer command (${program})`, trainer.command.join(" "), run);
  }
  if (!result) {
    throw new Error(`the trainer command (${program}) printed no progress lines on stdout; cannot report its loss`);
  }
  return { ...result, seconds: (performance.now() - started) / 1000, epochs: [result] };
}
