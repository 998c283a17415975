// One uPlot time-series (or step-series) chart: made once per set of lines, fed new data as it
// polls, resized with its box.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";

export interface Line {
  label: string;
  values: (number | null)[];
  color: string;
  dash?: number[];
  /** "y" (left axis) unless named; a second scale gets its own axis on the right. */
  scale?: string;
  /**
   * Draw each point: the default on time charts, whose buckets are few and often alone between
   * gaps (a line needs two neighbours); set for sparse series such as one validation loss per epoch.
   */
  points?: boolean;
}

export interface ChartProps {
  id: string;
  title: string;
  x: number[];
  lines: Line[];
  /** x holds unix seconds (default) or plain numbers (training steps). */
  time?: boolean;
  format?: (v: number) => string;
  /** The x range to show (the range asked for, up to now), rather than the first to the last point. */
  xRange?: [number, number];
  /** Label and format of a second, right-hand scale. */
  right?: { scale: string; format: (v: number) => string };
  height?: number;
}

const plain = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const xRange = useRef(props.xRange);
  xRange.current = props.xRange;
  const { x, lines, time = true, height = 180 } = props;
  const format = props.format ?? plain;
  const shape = `${time}|${lines.map((l) => `${l.label}:${l.scale ?? "y"}`).join("|")}`;
  const data = (): uPlot.AlignedData => [x, ...lines.map((l) => l.values)];

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const width = () => Math.max(280, el.clientWidth);
    const axes: uPlot.Axis[] = [
      { stroke: "#667", grid: { stroke: "#eef" } },
      { stroke: "#667", grid: { stroke: "#eef" }, size: 66, values: (_u, ticks) => ticks.map(format) },
    ];
    const scales: uPlot.Scales = {
      x: { time, range: (_u, min, max) => xRange.current ?? [min, max] },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
    };
    if (props.right) {
      const right = props.right;
      axes.push({
        scale: right.scale,
        side: 1,
        stroke: "#667",
        grid: { show: false },
        size: 72,
        values: (_u, ticks) => ticks.map(right.format),
      });
      scales[right.scale] = { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] };
    }
    const series: uPlot.Series[] = [
      {},
      ...lines.map(
        (l): uPlot.Series => ({
          label: l.label,
          stroke: l.color,
          width: 1.5,
          scale: l.scale ?? "y",
          // Time buckets without requests are gaps; steps of a loss curve are joined.
          spanGaps: l.points === true || !time,
          points: { show: l.points ?? time, size: 5 },
          value: (_u, v) =>
            v === null || v === undefined
              ? "—"
              : ((l.scale === props.right?.scale ? props.right?.format : format)?.(v) ?? ""),
          ...(l.dash ? { dash: l.dash } : {}),
        }),
      ),
    ];
    const u = new uPlot({ width: width(), height, axes, scales, series, legend: { live: true } }, data(), el);
    plot.current = u;
    const resize = new ResizeObserver(() => u.setSize({ width: width(), height }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData(data());
  });

  const points = lines.reduce((n, l) => n + l.values.filter((v) => v !== null).length, 0);
  return (
    <figure class="chart" data-chart={props.id} data-points={points}>
      <figcaption>{props.title}</figcaption>
      <div ref={box} class="plot" />
      {points === 0 && <p class="empty">No data in this range yet.</p>}
    </figure>
  );
}

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];

/** A stable colour per name: `total` is slate, the rest take the palette in order. */
export function colorOf(name: string, index: number): string {
  return name === "total" ? "#334155" : (PALETTE[index % PALETTE.length] as string);
}
