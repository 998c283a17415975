// Traffic at a glance: rates, errors, timings, throughput and cache hits per model and in
// total over the chosen range, and the models the pool holds now.
import { type Api, type ModelRow, type SeriesGroup, seriesRange, type TimeSeries } from "./api.ts";
import { Chart, colorOf, type Line } from "./chart.tsx";
import { bytes, ms, percent, rate } from "./format.ts";
import { usePoll } from "./poll.ts";

interface Props {
  api: Api;
  range: number;
  everyMs: number;
  onUnauthorized: () => void;
}

type Pick = (g: SeriesGroup) => (number | null)[];

function linesOf(groups: SeriesGroup[], pick: Pick, dashedPick?: Pick): Line[] {
  return groups.flatMap((g, i) => {
    const color = colorOf(g.group, i);
    const lines: Line[] = [{ label: dashedPick ? `${g.group} p50` : g.group, values: pick(g), color }];
    if (dashedPick) lines.push({ label: `${g.group} p95`, values: dashedPick(g), color, dash: [6, 4] });
    return lines;
  });
}

export function Overview({ api, range, everyMs, onUnauthorized }: Props) {
  const polled = usePoll(
    async () => {
      const since = Math.floor(Date.now() / 1000) - range;
      const [series, models] = await Promise.all([
        api.get<TimeSeries>(`/admin/timeseries?group_by=model&since=${since}`),
        api.get<{ data: ModelRow[] }>("/admin/models"),
      ]);
      return { series, models: models.data };
    },
    [range, api],
    everyMs,
    onUnauthorized,
  );
  const { data, error } = polled;
  if (!data) return <p class="muted">{error ?? "Loading…"}</p>;
  const { series, models } = data;
  const groups = series.groups;
  const x = series.timestamps;
  const xr = seriesRange(series);
  const total = groups[0];
  const requests = total?.requests.reduce((a, b) => a + b, 0) ?? 0;
  const local = models.filter((m) => m.provider === "llama");
  const queue = local.reduce((n, m) => n + m.queue_depth, 0);
  const busy = local.reduce((n, m) => n + m.busy_sequences, 0);
  const memory = local.reduce((n, m) => n + (m.memory_bytes ?? 0), 0);

  return (
    <section>
      {error && <p class="error">{error}</p>}
      <div class="tiles">
        <Tile label="Requests in range" value={String(requests)} />
        <Tile label="Queue depth" value={String(queue)} id="queue-depth" />
        <Tile label="Busy sequences" value={String(busy)} />
        <Tile label="Models loaded" value={`${local.filter((m) => m.loaded).length} / ${local.length}`} />
        <Tile label="Model memory" value={bytes(memory)} />
      </div>
      <div class="charts">
        <Chart
          id="requests"
          title="Requests / s"
          x={x}
          xRange={xr}
          lines={linesOf(groups, (g) => g.requests_per_second)}
          format={rate}
        />
        <Chart
          id="error-rate"
          title="Error rate"
          x={x}
          xRange={xr}
          lines={linesOf(groups, (g) => g.error_rate)}
          format={percent}
        />
        <Chart
          id="ttft"
          title="Time to first token (p50, p95 dashed)"
          x={x}
          xRange={xr}
          lines={linesOf(
            groups,
            (g) => g.ttft_ms.p50,
            (g) => g.ttft_ms.p95,
          )}
          format={ms}
        />
        <Chart
          id="latency"
          title="Latency (p50, p95 dashed)"
          x={x}
          xRange={xr}
          lines={linesOf(
            groups,
            (g) => g.latency_ms.p50,
            (g) => g.latency_ms.p95,
          )}
          format={ms}
        />
        <Chart
          id="tokens"
          title="Completion tokens / s"
          x={x}
          xRange={xr}
          lines={linesOf(groups, (g) => g.tokens_per_second)}
          format={rate}
        />
        <Chart
          id="cache"
          title="Cache hit rate"
          x={x}
          xRange={xr}
          lines={linesOf(groups, (g) => g.cache_hit_rate)}
          format={percent}
        />
      </div>
      <h2>Models</h2>
      <div class="table-wrap">
        <table data-testid="models">
          <thead>
            <tr>
              <th>Model</th>
              <th>Provider</th>
              <th>Loaded</th>
              <th>Memory</th>
              <th>Busy / parallel</th>
              <th>Queue</th>
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.id}>
                <td>
                  <code>{m.id}</code>
                  {m.aliases.length > 0 && <span class="muted"> ({m.aliases.join(", ")})</span>}
                </td>
                <td>{m.provider}</td>
                <td>{m.provider === "llama" ? (m.loaded ? "yes" : "no") : "upstream"}</td>
                <td>{bytes(m.memory_bytes)}</td>
                <td>{m.parallel === null ? "—" : `${m.busy_sequences} / ${m.parallel}`}</td>
                <td>{m.provider === "llama" ? m.queue_depth : "—"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}

function Tile(props: { label: string; value: string; id?: string }) {
  return (
    <div class="tile" data-testid={props.id}>
      <div class="tile-value">{props.value}</div>
      <div class="tile-label">{props.label}</div>
    </div>
  );
}
