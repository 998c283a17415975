// stopLeftoverTrainer kills the trainer a killed server left behind, and nothing else.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stopLeftoverTrainer } from "../../src/finetune/llama-finetune.ts";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
});

/** A process that sleeps, with `args` on its command line (as /proc shows it). */
function sleeper(...args: string[]): ChildProcess {
  const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60000)", ...args], { stdio: "ignore" });
  children.push(child);
  return child;
}

const exited = (c: ChildProcess) =>
  c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve(c.signalCode)
    : new Promise<NodeJS.Signals | null>((r) => c.once("exit", (_code, signal) => r(signal)));

describe.runIf(existsSync("/proc/self/cmdline"))("stopLeftoverTrainer", () => {
  it("kills the llama-finetune recorded in the job's work folder", async () => {
    const work = mkdtempSync(join(tmpdir(), "roundhouse-work-"));
    const trainer = sleeper("llama-finetune", "-o", join(work, "epoch-1.gguf"));
    writeFileSync(join(work, "trainer.pid"), String(trainer.pid));
    await new Promise((r) => setTimeout(r, 200));
    expect(await stopLeftoverTrainer(join(work, "trainer.pid"))).toBe(true);
    expect(await exited(trainer)).toBe("SIGKILL");
    rmSync(work, { recursive: true, force: true });
  });

  it("leaves alone a process that reused the pid, and does nothing without a pid file", async () => {
    const work = mkdtempSync(join(tmpdir(), "roundhouse-work-"));
    const other = sleeper("something-else", work);
    const elsewhere = sleeper("llama-finetune", "/another/job");
    await new Promise((r) => setTimeout(r, 200));
    for (const c of [other, elsewhere]) {
      writeFileSync(join(work, "trainer.pid"), String(c.pid));
      expect(await stopLeftoverTrainer(join(work, "trainer.pid"))).toBe(false);
      expect(c.exitCode).toBeNull();
      expect(c.signalCode).toBeNull();
    }
    expect(await stopLeftoverTrainer(join(work, "missing.pid"))).toBe(false);
    rmSync(work, { recursive: true, force: true });
  });
});
