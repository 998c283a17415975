import { describe, expect, it } from "vitest";
import {
  canTransition,
  IllegalTransitionError,
  isTerminal,
  type JobState,
  transition,
} from "../../src/finetune/state.ts";

const fresh: JobState = { status: "validating_files", error: null, finished_at: null, estimated_finish: null };

describe("fine-tuning job state machine", () => {
  it("walks the happy path, one event per change, finished_at only at the end", () => {
    let job = fresh;
    const messages: string[] = [];
    for (const to of ["queued", "running", "succeeded"] as const) {
      const r = transition(job, to, { now: 100 });
      job = r.job;
      messages.push(r.event.message);
    }
    expect(job.status).toBe("succeeded");
    expect(job.finished_at).toBe(100);
    expect(messages).toHaveLength(3);
  });

  it("refuses moves out of terminal states and backwards", () => {
    for (const terminal of ["succeeded", "failed", "cancelled"] as const) {
      expect(isTerminal(terminal)).toBe(true);
      expect(() => transition({ ...fresh, status: terminal }, "running", { now: 1 })).toThrow(IllegalTransitionError);
    }
    expect(canTransition("queued", "validating_files")).toBe(false);
    expect(canTransition("validating_files", "running")).toBe(false);
  });

  it("lets every live state be cancelled or failed", () => {
    for (const live of ["validating_files", "queued", "running"] as const) {
      expect(transition({ ...fresh, status: live }, "cancelled", { now: 5 }).job.finished_at).toBe(5);
      const failed = transition({ ...fresh, status: live }, "failed", {
        now: 5,
        error: { code: "x", message: "boom", param: null },
      });
      expect(failed.job.error?.message).toBe("boom");
      expect(failed.event.level).toBe("error");
    }
  });

  it("needs an error to fail, and re-queues a running job (resume after a restart)", () => {
    expect(() => transition({ ...fresh, status: "running" }, "failed", { now: 1 })).toThrow(/needs an error/);
    const r = transition({ ...fresh, status: "running" }, "queued", { now: 1, message: "resumes" });
    expect(r.job.status).toBe("queued");
    expect(r.event.message).toBe("resumes");
  });
});
