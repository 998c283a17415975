// Experiments: each one's variants with weights, state, figures and verdicts against control,
// its rollback/restore/weights events, per-variant error rate and latency over time, and the
// two actions an operator takes here (new weights, restoring a rolled-back canary), each
// confirmed before it is sent to the admin routes.
import { useState } from "preact/hooks";
import { type Api, type ExperimentResults, seriesRange, type TimeSeries, type VariantResult } from "./api.ts";
import { Chart, colorOf, type Line } from "./chart.tsx";
import { fixed, ms, orDash, percent, time } from "./format.ts";
import { usePoll } from "./poll.ts";

interface Props {
  api: Api;
  range: number;
  everyMs: number;
  onUnauthorized: () => void;
}

type ExperimentEvent = ExperimentResults["events"][number];

export function Experiments({ api, range, everyMs, onUnauthorized }: Props) {
  const polled = usePoll(
    async () => {
      const since = Math.floor(Date.now() / 1000) - range;
      const [results, series] = await Promise.all([
        api.get<{ data: ExperimentResults[] }>("/admin/experiments"),
        api.get<TimeSeries>(`/admin/timeseries?group_by=variant&since=${since}`),
      ]);
      return { experiments: results.data, series };
    },
    [range, api],
    everyMs,
    onUnauthorized,
  );
  const { data, error } = polled;
  if (!data) return <p class="muted">{error ?? "Loading…"}</p>;
  if (data.experiments.length === 0)
    return <p class="muted">No experiments are configured (models.yaml `experiments`).</p>;
  return (
    <section>
      {error && <p class="error">{error}</p>}
      {data.experiments.map((e) => (
        <ExperimentCard key={e.name} experiment={e} series={data.series} api={api} changed={polled.refresh} />
      ))}
    </section>
  );
}

interface Pending {
  what: string;
  run: () => Promise<unknown>;
}

function ExperimentCard(props: { experiment: ExperimentResults; series: TimeSeries; api: Api; changed: () => void }) {
  const { experiment: e, series, api } = props;
  const [draft, setDraft] = useState<Record<string, string>>({});
  const [pending, setPending] = useState<Pending | undefined>(undefined);
  const [message, setMessage] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const weightOf = (v: VariantResult) => draft[v.name] ?? String(v.effective_weight);
  const base = `/admin/experiments/${encodeURIComponent(e.name)}`;

  const confirm = async () => {
    if (!pending) return;
    const { what, run } = pending;
    setPending(undefined);
    try {
      await run();
      setMessage({ ok: true, text: `Done: ${what}.` });
      setDraft({});
      props.changed();
    } catch (err) {
      setMessage({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
  };

  const askWeights = () => {
    const weights: Record<string, number> = {};
    for (const v of e.variants) {
      const w = Number(weightOf(v));
      if (!Number.isFinite(w) || w < 0) {
        setMessage({ ok: false, text: `Weight of ${v.name} must be a number ≥ 0.` });
        return;
      }
      // A rolled-back variant stays at 0 until restored: its weight is left as it is.
      if (v.state === "active") weights[v.name] = w;
    }
    const text = Object.entries(weights)
      .map(([name, w]) => `${name}=${w}`)
      .join(", ");
    setPending({ what: `set weights ${text}`, run: () => api.call("PUT", `${base}/weights`, { weights }) });
  };

  const xr = seriesRange(series);
  // Per-variant error rate (left) and p50 latency (right) over time, on one chart.
  const mine = series.groups.filter((g) => g.group.startsWith(`${e.name}/`));
  const lines: Line[] = mine.flatMap((g, i) => {
    const name = g.group.slice(e.name.length + 1);
    const color = colorOf(name, i);
    return [
      { label: `${name} error rate`, values: g.error_rate, color },
      { label: `${name} latency p50`, values: g.latency_ms.p50, color, dash: [6, 4], scale: "ms" },
    ];
  });

  return (
    <article class="card" data-experiment={e.name}>
      <header class="card-head">
        <h2>{e.name}</h2>
        <span class="muted">
          control <b>{e.control}</b> · sticky on <code>{e.sticky_header}</code> · since {time(e.since)}
        </span>
      </header>
      <div class="table-wrap">
        <table>
          <thead>
            <tr>
              <th>Variant</th>
              <th>Models</th>
              <th>Weight (config → effective)</th>
              <th>State</th>
              <th>Requests</th>
              <th>Error rate</th>
              <th>Latency p50 / p95</th>
              <th>TTFT p95</th>
              <th>Feedback</th>
              <th>vs control</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {e.variants.map((v) => (
              <tr key={v.name} data-variant={v.name}>
                <td>
                  <b>{v.name}</b> {v.control && <span class="badge">control</span>}
                  {v.canary && <span class="badge">canary</span>}
                </td>
                <td>{v.models.join(", ")}</td>
                <td>
                  {v.configured_weight} →{" "}
                  <input
                    class="weight"
                    type="number"
                    min={0}
                    step="any"
                    aria-label={`weight of ${v.name}`}
                    data-testid={`weight-${e.name}-${v.name}`}
                    disabled={v.state === "rolled_back"}
                    value={weightOf(v)}
                    onInput={(ev) => setDraft({ ...draft, [v.name]: (ev.currentTarget as HTMLInputElement).value })}
                  />
                </td>
                <td>
                  <span class={`state ${v.state}`} data-testid={`state-${e.name}-${v.name}`}>
                    {v.state === "rolled_back" ? "rolled back" : "active"}
                  </span>
                </td>
                <td>
                  {v.requests}
                  {v.forced > 0 && <span class="muted"> (+{v.forced} forced)</span>}
                </td>
                <td>{percent(v.error_rate)}</td>
                <td>
                  {orDash(v.latency_ms.p50, ms)} / {orDash(v.latency_ms.p95, ms)}
                </td>
                <td>{orDash(v.ttft_ms.p95, ms)}</td>
                <td>
                  {v.feedback.count === 0 ? "—" : `${v.feedback.count} · mean ${orDash(v.feedback.mean, fixed(2))}`}
                </td>
                <td class="wrap">
                  <Verdicts v={v} />
                </td>
                <td>
                  {v.state === "rolled_back" && (
                    <button
                      type="button"
                      data-testid={`restore-${e.name}-${v.name}`}
                      onClick={() =>
                        setPending({
                          what: `restore ${v.name} at weight ${v.configured_weight}`,
                          run: () => api.call("POST", `${base}/variants/${encodeURIComponent(v.name)}/restore`),
                        })
                      }
                    >
                      Restore…
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="actions">
        <button type="button" data-testid={`weights-${e.name}`} onClick={askWeights}>
          Change weights…
        </button>
        {pending && (
          <div class="confirm" role="alertdialog" data-testid="confirm">
            <span>
              {e.name}: {pending.what}?
            </span>
            <button type="button" class="primary" data-testid="confirm-yes" onClick={() => void confirm()}>
              Confirm
            </button>
            <button type="button" onClick={() => setPending(undefined)}>
              Cancel
            </button>
          </div>
        )}
        {message && <span class={message.ok ? "ok" : "error"}>{message.text}</span>}
      </div>
      <Chart
        id={`experiment-${e.name}`}
        title="Error rate (solid, left) and latency p50 (dashed, right) per variant"
        x={series.timestamps}
        xRange={xr}
        lines={lines}
        format={percent}
        right={{ scale: "ms", format: ms }}
      />
      <Events events={e.events} />
    </article>
  );
}

function Verdicts({ v }: { v: VariantResult }) {
  const c = v.vs_control;
  if (!c) return <span class="muted">—</span>;
  const p = (x: number) => x.toPrecision(2);
  return (
    <span class="verdicts">
      <span class={`verdict ${c.verdict}`}>{c.verdict}</span>
      <br />
      <span class="muted">
        {c.error_rate && `errors ${c.error_rate.verdict} p=${p(c.error_rate.p_value)}`}
        {c.error_rate && c.latency && " · "}
        {c.latency && `latency ${c.latency.verdict} p=${p(c.latency.p_value)}`}
      </span>
    </span>
  );
}

function Events({ events }: { events: ExperimentEvent[] }) {
  if (events.length === 0) return <p class="muted">No rollbacks, restores or weight changes yet.</p>;
  return (
    <ul class="events">
      {[...events].reverse().map((ev) => (
        <li key={`${ev.type}-${ev.at}`} class={`event ${ev.type}`} data-testid={`event-${ev.type}`}>
          <time>{time(ev.at)}</time> <EventText ev={ev} />
        </li>
      ))}
    </ul>
  );
}

function EventText({ ev }: { ev: ExperimentEvent }) {
  switch (ev.type) {
    case "rollback": {
      const r = ev.rule;
      const limit = r.max !== undefined ? `max ${r.max}` : `max ${r.max_vs_control} × control`;
      return (
        <span>
          <b>{ev.variant} rolled back</b>: rule <code>{r.metric}</code> {limit} (window {Math.round(r.window_ms / 1000)}{" "}
          s, at least {r.min_requests} requests) tripped at {ev.observed} &gt; {ev.threshold}
          {ev.control_value !== null && <> (control {ev.control_value})</>} over {ev.requests.variant} requests
          {ev.requests.control !== null && <> (control {ev.requests.control})</>}
        </span>
      );
    }
    case "restore":
      return (
        <span>
          <b>{ev.variant} restored</b>
        </span>
      );
    case "weights":
      return (
        <span>
          <b>weights set</b>:{" "}
          {Object.entries(ev.weights)
            .map(([name, w]) => `${name}=${w}`)
            .join(", ")}
        </span>
      );
  }
}
