// One run of a trainer process (llama-finetune, or a command trainer): spawned, its output
// handed on as it comes, the end of its stderr kept for a failure's message, killed at once
// (SIGKILL) when the job stops, and whether the kernel's OOM killer struck while it ran.
import { spawn } from "node:child_process";
import { explainToolFailure, oomKillCount, type ToolExit, ToolFailedError } from "./trainer-failure.ts";

export interface TrainerProcess {
  program: string;
  args: readonly string[];
  cwd?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  /** Aborting kills the process at once. */
  signal?: AbortSignal | undefined;
  onSpawn?: ((pid: number) => void) | undefined;
  /** stdout, as text; ignored without it. */
  stdout?: ((chunk: string) => void) | undefined;
  /** stderr, as text (its end is kept either way). */
  stderr?: ((chunk: string) => void) | undefined;
}

export interface TrainerRun extends ToolExit {
  /** It was killed because `signal` aborted. */
  aborted: boolean;
}

/** Chunks of stderr kept: enough for the lines that explain a failure. */
const TAIL_CHUNKS = 20;

export async function runTrainer(p: TrainerProcess): Promise<TrainerRun> {
  const tail: string[] = [];
  let aborted = false;
  const oomBefore = await oomKillCount();
  const { code, signal } = await new Promise<Pick<ToolExit, "code" | "signal">>((resolve) => {
    const child = spawn(p.program, [...p.args], {
      cwd: p.cwd,
      env: p.env,
      stdio: ["ignore", p.stdout ? "pipe" : "ignore", "pipe"],
    });
    if (child.pid !== undefined) p.onSpawn?.(child.pid);
    const kill = () => {
      aborted = true;
      child.kill("SIGKILL");
    };
    p.signal?.addEventListener("abort", kill, { once: true });
    if (p.stdout && child.stdout) {
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", p.stdout);
    }
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      p.stderr?.(chunk);
      tail.push(chunk);
      if (tail.length > TAIL_CHUNKS) tail.shift();
    });
    // A program that cannot start (not found, not executable) ends like one that failed.
    child.on("error", (err) => {
      tail.push(`cannot start ${p.program}: ${err.message}`);
    });
    // "close" waits for the process to exit and its pipes to drain: once it fires, nothing is left running.
    child.on("close", (c, sig) => {
      p.signal?.removeEventListener("abort", kill);
      resolve({ code: c, signal: sig });
    });
  });
  const oomAfter = oomBefore === undefined ? undefined : await oomKillCount();
  return {
    code,
    signal,
    stderr: tail.join(""),
    oomKilled: oomBefore !== undefined && oomAfter !== undefined && oomAfter > oomBefore,
    aborted,
  };
}

/** A failed run (or one that wrote no output) as the job's error: in the trainer's words, without paths. */
export function trainerFailed(what: string, command: string, run: TrainerRun): ToolFailedError {
  return new ToolFailedError(explainToolFailure(what, { ...run, missingOutput: true }), {
    command,
    stderr: run.stderr.slice(-4000),
    code: run.code,
    signal: run.signal,
  });
}
