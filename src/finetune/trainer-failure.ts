// Why a llama.cpp tool failed, in its own words: the few stderr lines that say what went
// wrong (an assertion, an exception, an error), how it ended (exit code, or a signal by
// name, or the kernel's out-of-memory killer), and no absolute paths — a job's error is
// shown to API clients, while the full stderr and command line go to the server log.
import { readFile } from "node:fs/promises";

export interface ToolExit {
  /** Exit code, or null when a signal ended the process. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The end of the tool's stderr. */
  stderr: string;
  /** True when the kernel's OOM killer killed a process of ours while the tool ran. */
  oomKilled?: boolean;
  /** The tool exited 0 but did not write its output (llama-finetune exits 0 when saving fails). */
  missingOutput?: boolean;
}

/** Lines that say what went wrong; kept in preference to any other line. */
const MEANINGFUL =
  /GGML_ASSERT|GGML_ABORT|assert|error|failed|failure|fatal|abort|terminate|what\(\)|exception|out of memory|bad_alloc|cannot|unable|invalid|not enough/i;

/** Progress bars, backtraces and debugger chatter say nothing about the cause. */
const NOISE = [
  /^(train|val):\s/,
  /^#\d+\s/, // gdb / ggml_print_backtrace frames
  /^\d+\t/, // gdb's source line of the frame it stopped in
  /\(\+0x[0-9a-f]+\)/i, // backtrace_symbols frames: lib.so(+0x1234)
  /^\[(New|Thread|Inferior)\b/,
  /^(Thread debugging|Using host libthread_db|warning: |Attaching to|Detaching from|0x[0-9a-f]+ in )/i,
  /^ptrace: /,
  /^(No symbol table|Could not attach)/,
];

/** At most this many lines of the tool's own words go into the message. */
const MAX_LINES = 3;
const MAX_LINE_LENGTH = 300;

/** Replaces absolute paths by their last component: `/src/ggml/src/ggml.c:6370` → `ggml.c:6370`. */
export function stripPaths(text: string): string {
  // Only paths that start a word: `a/b/c` (relative) is left alone.
  return text.replace(/(?<![\w.~-])~?(?:\/[^\s/:'"`()[\]]+)+\/([^\s/:'"`()[\]]+)/g, "$1");
}

/** The last lines of `stderr` that explain a failure, paths stripped. */
export function meaningfulLines(stderr: string): string[] {
  const lines = stderr
    .split(/[\r\n]+/)
    .map((l) => l.replace(/^\d+\.\d+\.\d+\.\d+ [IWE] /, "").trim()) // llama.cpp's log timestamps
    .filter((l) => l !== "" && !NOISE.some((re) => re.test(l)));
  const chosen = lines.filter((l) => MEANINGFUL.test(l));
  const picked = (chosen.length > 0 ? chosen : lines).slice(-MAX_LINES);
  return picked.map((l) => {
    const clean = stripPaths(l);
    return clean.length > MAX_LINE_LENGTH ? `${clean.slice(0, MAX_LINE_LENGTH)}…` : clean;
  });
}

const SIGNALS: Partial<Record<NodeJS.Signals, string>> = {
  SIGABRT: "aborted (SIGABRT)",
  SIGSEGV: "crashed (SIGSEGV, segmentation fault)",
  SIGBUS: "crashed (SIGBUS, bus error)",
  SIGFPE: "crashed (SIGFPE, arithmetic error)",
  SIGILL: "crashed (SIGILL, an instruction this CPU does not have)",
  SIGTERM: "was stopped (SIGTERM)",
  SIGINT: "was interrupted (SIGINT)",
};

/** How the tool ended, in words. */
export function describeExit(exit: ToolExit): string {
  if (exit.oomKilled) return "was killed by the kernel: out of memory";
  if (exit.signal === "SIGKILL") {
    return "was killed (SIGKILL), most likely by the kernel's out-of-memory killer";
  }
  if (exit.signal) return SIGNALS[exit.signal] ?? `was killed by ${exit.signal}`;
  if (exit.code === 0 && exit.missingOutput) return "exited without writing its output file";
  if (exit.code === 134) return "aborted (exit 134)";
  if (exit.code === 137) return "was killed (exit 137), most likely by the kernel's out-of-memory killer";
  return `exited with code ${exit.code}`;
}

/** One line for a job's error: `llama-finetune aborted (SIGABRT): ggml.c:6370: GGML_ASSERT(…) failed`. Never empty after the colon. */
export function explainToolFailure(tool: string, exit: ToolExit): string {
  const lines = meaningfulLines(exit.stderr);
  const said = lines.length > 0 ? lines.join(" | ") : "it printed nothing on stderr";
  return `${tool} ${describeExit(exit)}: ${said}`;
}

/**
 * The cgroup's count of OOM kills (v2 memory.events, else v1 memory.oom_control), or
 * undefined where neither is readable. A count that grew while a tool ran means the
 * kernel killed a process for lack of memory.
 */
export async function oomKillCount(root = "/sys/fs/cgroup"): Promise<number | undefined> {
  for (const file of [`${root}/memory.events`, `${root}/memory/memory.oom_control`]) {
    const text = await readFile(file, "utf8").catch(() => undefined);
    const m = text === undefined ? null : /^oom_kill (\d+)$/m.exec(text);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** A llama.cpp tool failed: `message` is for the job (no paths), `detail` for the log. */
export class ToolFailedError extends Error {
  constructor(
    message: string,
    readonly detail: { command: string; stderr: string; code: number | null; signal: string | null },
  ) {
    super(message);
  }
}
