// Fine-tuning: every tenant's jobs with status and progress, each job's training and
// validation loss by step from its events (refreshed while it trains), its checkpoints and
// the ft: model it made.
import { useRef } from "preact/hooks";
import type { AdminJob, Api, Checkpoint, JobEvent, Page } from "./api.ts";
import { Chart, type Line } from "./chart.tsx";
import { fixed, orDash, time } from "./format.ts";
import { usePoll } from "./poll.ts";

interface Props {
  api: Api;
  everyMs: number;
  onUnauthorized: () => void;
}

interface JobView {
  job: AdminJob;
  events: JobEvent[];
  checkpoints: Checkpoint[];
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const JOBS_SHOWN = 20;

export function FineTuning({ api, everyMs, onUnauthorized }: Props) {
  // A finished job's events and checkpoints do not change: fetched once.
  const done = useRef(new Map<string, JobView>());
  const polled = usePoll(
    async () => {
      // The newest jobs, each with its events and checkpoints (one request each while it runs).
      const jobs = await api.get<Page<AdminJob>>(`/admin/fine_tuning/jobs?limit=${JOBS_SHOWN}`);
      return Promise.all(
        jobs.data.map(async (job): Promise<JobView> => {
          const kept = done.current.get(job.id);
          if (kept && kept.job.status === job.status) return kept;
          const path = `/admin/fine_tuning/jobs/${encodeURIComponent(job.id)}`;
          const [events, checkpoints] = await Promise.all([
            api.all<JobEvent>(`${path}/events`),
            api.all<Checkpoint>(`${path}/checkpoints`),
          ]);
          const view = { job, events, checkpoints };
          if (TERMINAL.has(job.status)) done.current.set(job.id, view);
          return view;
        }),
      );
    },
    [api],
    everyMs,
    onUnauthorized,
  );
  const { data, error } = polled;
  if (!data) return <p class="muted">{error ?? "Loading…"}</p>;
  if (data.length === 0) return <p class="muted">No fine-tuning jobs yet (POST /v1/fine_tuning/jobs).</p>;
  return (
    <section>
      {error && <p class="error">{error}</p>}
      {data.map((v) => (
        <JobCard key={v.job.id} view={v} />
      ))}
      {data.length === JOBS_SHOWN && (
        <p class="muted">The {JOBS_SHOWN} newest jobs; GET /admin/fine_tuning/jobs lists the others.</p>
      )}
    </section>
  );
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** Training loss per step (the step events) and validation loss per epoch (the epoch events), on one x of steps. */
export function lossCurves(events: readonly JobEvent[]): { x: number[]; lines: Line[]; progress: number | undefined } {
  const train = new Map<number, number>();
  const valid = new Map<number, number>();
  let progress: number | undefined;
  // Events come newest first.
  for (const e of [...events].reverse()) {
    if (e.type !== "metrics") continue;
    const step = num(e.data.step);
    if (step === undefined) continue;
    const total = num(e.data.total_steps);
    const trainLoss = num(e.data.train_loss);
    if (total !== undefined && trainLoss !== undefined) {
      train.set(step, trainLoss);
      progress = Math.min(1, step / total);
    }
    const validLoss = num(e.data.valid_loss);
    if (validLoss !== undefined && total === undefined) valid.set(step, validLoss);
  }
  const x = [...new Set([...train.keys(), ...valid.keys()])].sort((a, b) => a - b);
  const lines: Line[] = [{ label: "training loss", values: x.map((s) => train.get(s) ?? null), color: "#2563eb" }];
  if (valid.size > 0) {
    lines.push({
      label: "validation loss",
      values: x.map((s) => valid.get(s) ?? null),
      color: "#dc2626",
      points: true,
    });
  }
  return { x, lines, progress };
}

function JobCard({ view }: { view: JobView }) {
  const { job, events, checkpoints } = view;
  const curves = lossCurves(events);
  const progress = job.status === "succeeded" ? 1 : (curves.progress ?? 0);
  return (
    <article class="card" data-job={job.id}>
      <header class="card-head">
        <h2>
          <code>{job.id}</code>
        </h2>
        <span class={`state ${job.status}`} data-testid={`job-status-${job.id}`}>
          {job.status}
        </span>
      </header>
      <dl class="facts">
        <dt>Tenant</dt>
        <dd>{job.tenant ?? "—"}</dd>
        <dt>Base model</dt>
        <dd>
          <code>{job.model}</code>
        </dd>
        <dt>Fine-tuned model</dt>
        <dd data-testid={`job-model-${job.id}`}>{job.fine_tuned_model ? <code>{job.fine_tuned_model}</code> : "—"}</dd>
        <dt>Created</dt>
        <dd>{time(job.created_at)}</dd>
        <dt>Epochs</dt>
        <dd>{String(job.hyperparameters.n_epochs)}</dd>
        <dt>Trained tokens</dt>
        <dd>{job.trained_tokens ?? "—"}</dd>
        <dt>Progress</dt>
        <dd>
          <progress max={1} value={progress} /> {Math.round(progress * 100)}%
        </dd>
      </dl>
      {job.error && <p class="error">{job.error.message}</p>}
      <Chart id={`loss-${job.id}`} title="Loss by step" x={curves.x} lines={curves.lines} time={false} />
      {checkpoints.length > 0 && (
        <div class="table-wrap">
          <table data-testid={`checkpoints-${job.id}`}>
            <thead>
              <tr>
                <th>Checkpoint</th>
                <th>Step</th>
                <th>Training loss</th>
                <th>Validation loss</th>
              </tr>
            </thead>
            <tbody>
              {checkpoints.map((c) => (
                <tr key={c.id}>
                  <td>
                    <code>{c.fine_tuned_model_checkpoint}</code>
                  </td>
                  <td>{c.step_number}</td>
                  <td>{orDash(c.metrics.train_loss, fixed(4))}</td>
                  <td>{orDash(c.metrics.valid_loss, fixed(4))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </article>
  );
}
