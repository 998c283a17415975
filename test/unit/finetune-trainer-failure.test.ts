// A failed trainer explains itself: its own last meaningful words, how it ended, no paths.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  describeExit,
  explainToolFailure,
  meaningfulLines,
  oomKillCount,
  stripPaths,
} from "../../src/finetune/trainer-failure.ts";

// The end of what the unpatched llama-finetune printed on the 12-layer model (gdb's source line included).
const ASSERT_STDERR = [
  "0.00.822.741 I system_info: n_threads = 2 (n_threads_batch = 2) / 2 | CPU : SSE3 = 1 | AVX = 1 | OPENMP = 1 | ",
  "0.00.822.975 W tokenize: Added a BOS token to the prompt as specified by the model but the prompt also starts with a BOS token. So now the final prompt starts with 2 BOS tokens. Are you sure this is what you want?",
  "0.00.823.007 I -optimizer adamw -lr0 0.0001 -wd 0 -lr-min -1 -min-epochs -1 -epochs 1 -period 1 -val 0",
  "/root/.cache/roundhouse/llama.cpp/de3ff81-05c9f2f022b3/src/ggml/src/ggml.c:7291: GGML_ASSERT(cgraph->n_nodes < cgraph->size) failed",
  "30\t../sysdeps/unix/sysv/linux/wait4.c: No such file or directory.",
  "",
].join("\n");

// Backtrace and debugger chatter as other builds print them.
const BACKTRACE = [
  "[New LWP 12345]",
  "[Thread debugging using libthread_db enabled]",
  'Using host libthread_db library "/lib/x86_64-linux-gnu/libthread_db.so.1".',
  "0x00007f2b0c4ea42f in __GI___wait4 (pid=1, stat_loc=0x0, options=0) at ../sysdeps/unix/sysv/linux/wait4.c:30",
  "#0  0x00007f2b0c4ea42f in __GI___wait4 () at ../sysdeps/unix/sysv/linux/wait4.c:30",
  "#3  0x000055d0c0f3b4a1 in ggml_build_backward_expand ()",
  "./llama-finetune(+0x1a2b3c) [0x55d0c0f3b4a1]",
  "[Inferior 1 (process 12344) detached]",
].join("\n");

describe("stripPaths", () => {
  it("keeps only the last component of absolute paths", () => {
    expect(stripPaths("/a/b/ggml.c:6370: GGML_ASSERT(x) failed")).toBe("ggml.c:6370: GGML_ASSERT(x) failed");
    expect(stripPaths("failed to open /tmp/roundhouse-ft-x/work/train.txt")).toBe("failed to open train.txt");
    expect(stripPaths("file '/data/finetune/bases/m-f32.gguf' missing")).toBe("file 'm-f32.gguf' missing");
  });

  it("leaves relative paths and plain text alone", () => {
    expect(stripPaths("see a/b/c and 1/2 of it")).toBe("see a/b/c and 1/2 of it");
    expect(stripPaths("loss=0.5 acc=3%")).toBe("loss=0.5 acc=3%");
  });
});

describe("meaningfulLines", () => {
  it("picks the assertion out of logs, debugger chatter and backtraces", () => {
    const assertion = "ggml.c:7291: GGML_ASSERT(cgraph->n_nodes < cgraph->size) failed";
    expect(meaningfulLines(ASSERT_STDERR)).toEqual([assertion]);
    expect(meaningfulLines(`${ASSERT_STDERR}${BACKTRACE}`)).toEqual([assertion]);
  });

  it("falls back to the last lines when none says error, and skips progress bars", () => {
    const stderr =
      "line one\nline two\r\ntrain: [▏ ] data=0000001/0000010 loss=8.3±0.1 acc=1±1% t=00:00:00 ETA=00:00:01\r";
    expect(meaningfulLines(stderr)).toEqual(["line one", "line two"]);
  });

  it("keeps C++ exception messages", () => {
    const stderr = "terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n";
    expect(meaningfulLines(stderr)).toEqual([
      "terminate called after throwing an instance of 'std::bad_alloc'",
      "what():  std::bad_alloc",
    ]);
  });
});

describe("describeExit", () => {
  it("names signals and the out-of-memory killer", () => {
    expect(describeExit({ code: null, signal: "SIGABRT", stderr: "" })).toBe("aborted (SIGABRT)");
    expect(describeExit({ code: null, signal: "SIGSEGV", stderr: "" })).toContain("segmentation fault");
    expect(describeExit({ code: null, signal: "SIGKILL", stderr: "", oomKilled: true })).toBe(
      "was killed by the kernel: out of memory",
    );
    expect(describeExit({ code: null, signal: "SIGKILL", stderr: "" })).toContain("out-of-memory killer");
    expect(describeExit({ code: null, signal: "SIGUSR2", stderr: "" })).toBe("was killed by SIGUSR2");
    expect(describeExit({ code: 3, signal: null, stderr: "" })).toBe("exited with code 3");
    expect(describeExit({ code: 0, signal: null, stderr: "", missingOutput: true })).toContain(
      "without writing its output",
    );
  });
});

describe("explainToolFailure", () => {
  it("says how it ended and what it said, never `exit null` or nothing after the colon", () => {
    const message = explainToolFailure("llama-finetune", { code: null, signal: "SIGABRT", stderr: ASSERT_STDERR });
    expect(message).toBe(
      "llama-finetune aborted (SIGABRT): ggml.c:7291: GGML_ASSERT(cgraph->n_nodes < cgraph->size) failed",
    );
    const silent = explainToolFailure("llama-finetune", { code: null, signal: "SIGKILL", stderr: "" });
    expect(silent).not.toContain("null");
    expect(silent).toMatch(/: \S/);
    expect(silent).toContain("printed nothing");
  });
});

describe("oomKillCount", () => {
  it("reads cgroup v2 memory.events and v1 memory.oom_control, undefined without either", async () => {
    const root = mkdtempSync(join(tmpdir(), "roundhouse-cgroup-"));
    expect(await oomKillCount(root)).toBeUndefined();
    mkdirSync(join(root, "memory"));
    writeFileSync(join(root, "memory", "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n");
    expect(await oomKillCount(root)).toBe(4);
    writeFileSync(join(root, "memory.events"), "low 0\nhigh 0\nmax 2\noom 1\noom_kill 7\n");
    expect(await oomKillCount(root)).toBe(7);
    rmSync(root, { recursive: true, force: true });
  });
});
