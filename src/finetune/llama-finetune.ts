// The llama.cpp training tools as functions: llama-finetune (train, with its progress
// parsed), the metadata repair every trained file needs, and llama-quantize. Both the
// script that makes the built-in model (scripts/model/pipeline.ts re-exports these)
// and the fine-tuning jobs run the tools through here.
import { spawn } from "node:child_process";
import { existsSync, rmSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { type GgufMetadata, gguf, patchGgufMetadata } from "../engine/gguf.ts";
import { toolPath } from "../engine/llama-tools.ts";
import { explainToolFailure, type ToolExit, ToolFailedError } from "./trainer-failure.ts";
import { runTrainer, trainerFailed } from "./trainer-process.ts";

export interface FinetuneOptions {
  model: string;
  textFile: string;
  out: string;
  /** -c, -b and -ub: the tokens per optimizer step. llama.cpp pads the context to a
   * multiple of 256 and cuts its windows at that length, stepping half of it
   * (see trainerWindow in prepare.ts). */
  context: number;
  epochs: number;
  lr: number;
  lrMin?: number;
  /** Epochs over which lr decays to lrMin. */
  decayEpochs?: number;
  weightDecay?: number;
  /** Fraction of the windows (the last ones) used for validation; 0 for none. */
  valSplit: number;
  threads: number;
  seed?: number;
  /** Called with each finished epoch's figures. */
  onEpoch?: (epoch: number, result: EpochResult) => void;
  /** Called with each progress line (many per second). */
  onProgress?: (line: string) => void;
  /** Called with each progress line, parsed. */
  onStep?: (step: StepProgress) => void;
  /** Aborting kills the trainer at once (SIGKILL) and removes any partial output. */
  signal?: AbortSignal;
  /** Called with the trainer's pid once it runs. */
  onSpawn?: (pid: number) => void;
}

export interface Figures {
  loss: number;
  /** Token accuracy, 0..1. */
  accuracy: number;
}

export interface EpochResult {
  train: Figures;
  val: Figures | undefined;
}

export interface FinetuneResult extends EpochResult {
  seconds: number;
  epochs: EpochResult[];
}

/** One redraw of a progress bar. `loss`/`accuracy` are running means over the epoch so far. */
export interface StepProgress {
  phase: "train" | "val";
  /** Windows done in this phase of this epoch (1-based). */
  step: number;
  steps: number;
  loss: number;
  accuracy: number;
  elapsedSeconds: number;
  etaSeconds: number;
}

/** The trainer ran out of text: llama-finetune aborts (std::bad_alloc, exit 134) when the text is shorter than one window. */
export class TextTooShortError extends Error {}

export class TrainerAbortedError extends Error {
  constructor() {
    super("training was stopped");
  }
}

const PROGRESS_RE = /^(train|val):\s.*loss=([\d.]+|nan)±\S+ acc=([\d.]+|nan)±\S+%/;
const DETAIL_RE = /data=(\d+)\/(\d+).*\bt=(\d+):(\d+):(\d+) ETA=(\d+):(\d+):(\d+)/;
const EPOCH_RE = /\bepoch (\d+) lr=/;

/** Parses llama-finetune's stderr. It logs `epoch N lr=…` before every batch and
 * redraws its progress bars with \r, so an epoch's result is its last train/val
 * line, known once the epoch number changes or the output ends. */
export class FinetuneLog {
  readonly epochs: EpochResult[] = [];
  private epoch = -1;
  private current: Partial<EpochResult> = {};
  private rest = "";

  constructor(
    private readonly onEpoch?: (epoch: number, result: EpochResult) => void,
    private readonly onProgress?: (line: string) => void,
    private readonly onStep?: (step: StepProgress) => void,
  ) {}

  push(chunk: string): void {
    const parts = (this.rest + chunk).split(/[\r\n]/);
    this.rest = parts.pop() ?? "";
    for (const line of parts) this.line(line);
  }

  end(): void {
    this.line(this.rest);
    this.rest = "";
    this.close();
  }

  private line(line: string): void {
    const header = EPOCH_RE.exec(line);
    if (header) {
      const epoch = Number(header[1]);
      if (epoch !== this.epoch) this.close();
      this.epoch = epoch;
      return;
    }
    const trimmed = line.trim();
    const m = PROGRESS_RE.exec(trimmed);
    if (!m) return;
    this.onProgress?.(trimmed);
    const figures = { loss: Number(m[2]), accuracy: Number(m[3]) / 100 };
    const phase = m[1] === "train" ? "train" : "val";
    if (phase === "train") this.current.train = figures;
    else this.current.val = figures;
    const d = DETAIL_RE.exec(trimmed);
    if (d && this.onStep) {
      const n = d.slice(1).map(Number) as [number, number, number, number, number, number, number, number];
      this.onStep({
        phase,
        step: n[0],
        steps: n[1],
        ...figures,
        elapsedSeconds: n[2] * 3600 + n[3] * 60 + n[4],
        etaSeconds: n[5] * 3600 + n[6] * 60 + n[7],
      });
    }
  }

  private close(): void {
    const { train, val } = this.current;
    this.current = {};
    if (!train) return;
    const result = { train, val };
    this.epochs.push(result);
    this.onEpoch?.(this.epochs.length - 1, result);
  }
}

export async function finetune(opts: FinetuneOptions): Promise<FinetuneResult> {
  const args = [
    ["-m", opts.model],
    ["-f", opts.textFile],
    ["-o", opts.out],
    ["-c", opts.context],
    ["-b", opts.context],
    ["-ub", opts.context],
    ["-t", opts.threads],
    ["-epochs", opts.epochs],
    ["-lr", opts.lr],
    ["-val-split", opts.valSplit],
    opts.lrMin === undefined ? [] : ["-lr-min", opts.lrMin],
    opts.decayEpochs === undefined ? [] : ["-decay-epochs", opts.decayEpochs],
    opts.weightDecay === undefined ? [] : ["-wd", opts.weightDecay],
    opts.seed === undefined ? [] : ["-s", opts.seed],
  ]
    .flat()
    .map(String);
  const bin = await toolPath("llama-finetune");
  opts.signal?.throwIfAborted();
  const log = new FinetuneLog(opts.onEpoch, opts.onProgress, opts.onStep);
  const started = performance.now();
  const run = await runTrainer({
    program: bin,
    args,
    signal: opts.signal,
    onSpawn: opts.onSpawn,
    stderr: (chunk) => log.push(chunk),
  });
  if (run.aborted) {
    rmSync(opts.out, { force: true });
    throw new TrainerAbortedError();
  }
  log.end();
  const seconds = (performance.now() - started) / 1000;
  if (run.code === 134 && run.stderr.includes("bad_alloc")) {
    rmSync(opts.out, { force: true });
    throw new TextTooShortError("the training text is shorter than one training window (llama-finetune aborted)");
  }
  // llama-finetune exits 0 even when it could not save, so the file is the proof.
  if (run.code !== 0 || !existsSync(opts.out)) {
    rmSync(opts.out, { force: true });
    throw trainerFailed("llama-finetune", [bin, ...args].join(" "), run);
  }
  const last = log.epochs[log.epochs.length - 1];
  if (!last) throw new Error("llama-finetune printed no progress lines; cannot report its loss");
  return { ...last, seconds, epochs: log.epochs };
}

/**
 * Kills the trainer a previous server process left running, if any, and waits until it is gone.
 * SIGKILL on the server does not reach its children: llama-finetune trains on until it next
 * writes to its closed stderr, and a job resumed next to it would have two trainers writing
 * the same epoch file. Its pid is in `pidFile` (kept in the job's work folder); it is killed
 * only if /proc shows it is still a llama-finetune working in that folder, since a pid can be
 * reused, so where there is no /proc this does nothing. True when it killed one.
 */
export async function stopLeftoverTrainer(pidFile: string): Promise<boolean> {
  const pid = Number((await readFile(pidFile, "utf8").catch(() => "")).trim());
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return false;
  const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
  if (!cmdline.includes("llama-finetune") || !cmdline.includes(dirname(pidFile))) return false;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    return false;
  }
  // Gone once /proc no longer lists it, or lists it as a zombie nobody has reaped yet.
  for (let i = 0; i < 250; i++) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    if (stat === "" || /^\d+ \(.*\) Z/.test(stat)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

export interface RestoreOptions {
  chatTemplate: string;
  contextLength: number;
  fileType: number;
  name: string;
}

/** llama-finetune drops the chat template and file type and stores its training
 * window as the context length: put back what the served model must say. */
export async function restoreMetadata(src: string, dst: string, opts: RestoreOptions): Promise<void> {
  await patchGgufMetadata(src, dst, (m: GgufMetadata) => {
    const arch = m.get("general.architecture");
    const prefix = arch?.type === "string" ? arch.value : "llama";
    m.set("general.name", gguf.string(opts.name));
    m.set("general.file_type", gguf.u32(opts.fileType));
    m.set(`${prefix}.context_length`, gguf.u32(opts.contextLength));
    m.set("tokenizer.chat_template", gguf.string(opts.chatTemplate));
  });
}

export type QuantType = "Q8_0" | "Q4_0" | "F32";

/** `allowRequantize` lets a quantized file go back to F32 (the trainable form of a served Q8_0 model). */
export async function quantize(
  src: string,
  dst: string,
  type: QuantType,
  threads: number,
  opts: { allowRequantize?: boolean } = {},
): Promise<number> {
  const bin = await toolPath("llama-quantize");
  const output: string[] = [];
  const args = [...(opts.allowRequantize ? ["--allow-requantize"] : []), src, dst, type, String(threads)];
  const { code, signal } = await new Promise<Pick<ToolExit, "code" | "signal">>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (b: Buffer) => output.push(b.toString()));
    child.stderr.on("data", (b: Buffer) => output.push(b.toString()));
    child.on("error", reject);
    child.on("close", (c, sig) => resolve({ code: c, signal: sig }));
  });
  if (code !== 0 || !existsSync(dst)) {
    const stderr = output.join("").slice(-4000);
    throw new ToolFailedError(
      explainToolFailure(`llama-quantize (to ${type})`, { code, signal, stderr, missingOutput: true }),
      { command: [bin, ...args].join(" "), stderr, code, signal },
    );
  }
  return statSync(dst).size;
}
