// The fine-tuning job state machine, pure: which status may follow which, and the
// event each change records. Storage and the trainer call `transition`; nothing
// else writes a job's status.
//
//   validating_files → queued → running → succeeded | failed | cancelled
//   (any non-terminal state → failed | cancelled; running → queued when a job that was
//    running when the process died is resumed from its last checkpoint)

export const JOB_STATUSES = ["validating_files", "queued", "running", "succeeded", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

const NEXT: Record<JobStatus, readonly JobStatus[]> = {
  validating_files: ["queued", "failed", "cancelled"],
  queued: ["running", "failed", "cancelled"],
  running: ["succeeded", "failed", "cancelled", "queued"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

export function isTerminal(status: JobStatus): boolean {
  return NEXT[status].length === 0;
}

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return NEXT[from].includes(to);
}

export interface JobError {
  code: string;
  message: string;
  param: string | null;
}

/** The fields of a job the state machine owns. */
export interface JobState {
  status: JobStatus;
  error: JobError | null;
  finished_at: number | null;
  estimated_finish: number | null;
}

export interface StateEvent {
  level: "info" | "warn" | "error";
  message: string;
}

export class IllegalTransitionError extends Error {
  constructor(
    readonly from: JobStatus,
    readonly to: JobStatus,
  ) {
    super(`a fine-tuning job cannot go from ${from} to ${to}`);
  }
}

export interface TransitionInput {
  /** Unix seconds. */
  now: number;
  /** Required for `failed`. */
  error?: JobError;
  /** Replaces the default event message (e.g. why a job was re-queued). */
  message?: string;
}

/** The job's state after moving to `to`, and the event that records it; throws on an illegal move. */
export function transition<T extends JobState>(
  job: T,
  to: JobStatus,
  input: TransitionInput,
): { job: T; event: StateEvent } {
  if (!canTransition(job.status, to)) throw new IllegalTransitionError(job.status, to);
  if (to === "failed" && input.error === undefined) throw new Error("a failed job needs an error");
  const terminal = isTerminal(to);
  const next: T = {
    ...job,
    status: to,
    error: to === "failed" ? (input.error ?? null) : null,
    finished_at: terminal ? input.now : null,
    estimated_finish: terminal ? null : job.estimated_finish,
  };
  return { job: next, event: eventFor(to, input) };
}

function eventFor(to: JobStatus, input: TransitionInput): StateEvent {
  const level = to === "failed" ? "error" : "info";
  if (input.message !== undefined) return { level, message: input.message };
  switch (to) {
    case "validating_files":
      return { level, message: "Validating training file" };
    case "queued":
      return { level, message: "Files validated, fine-tuning job queued" };
    case "running":
      return { level, message: "Fine-tuning job started" };
    case "succeeded":
      return { level, message: "The job has successfully completed" };
    case "failed":
      return { level, message: `The job failed: ${input.error?.message ?? "unknown error"}` };
    case "cancelled":
      return { level, message: "The job was cancelled" };
  }
}
