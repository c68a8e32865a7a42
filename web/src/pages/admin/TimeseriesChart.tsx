import { Bar, CartesianGrid, ComposedChart, Line, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { Interval } from "../../api/types";
import type { SeriesRow } from "./analytics";
import { GRID_COLOR, SERIES_COLOR } from "./chartColors";

interface Props {
  rows: SeriesRow[];
  interval: Interval;
  /** What is counted, e.g. "Tasks created": the series name and the table's value column. */
  metricLabel: string;
  /** Says what the chart shows; the caption of the screen-reader table. */
  caption: string;
}

/**
 * A time series as a line (hours) or bar (days) chart. The SVG is hidden from assistive
 * technology, which gets the same rows as a visually hidden table instead.
 */
export function TimeseriesChart({ rows, interval, metricLabel, caption }: Props) {
  return (
    <div className="analytics-chart">
      <div aria-hidden="true">
        <ResponsiveContainer width="100%" height={280}>
          <ComposedChart data={rows} accessibilityLayer={false}>
            <CartesianGrid stroke={GRID_COLOR} strokeDasharray="3 3" />
            <XAxis dataKey="label" minTickGap={24} tick={{ fontSize: 12 }} />
            <YAxis allowDecimals={false} width={48} tick={{ fontSize: 12 }} />
            <Tooltip />
            {interval === "hour" ? (
              <Line
                dataKey="value"
                name={metricLabel}
                stroke={SERIES_COLOR}
                strokeWidth={2}
                dot={false}
                isAnimationActive={false}
              />
            ) : (
              <Bar dataKey="value" name={metricLabel} fill={SERIES_COLOR} isAnimationActive={false} />
            )}
          </ComposedChart>
        </ResponsiveContainer>
      </div>
      <table className="visually-hidden">
        <caption>{caption}</caption>
        <thead>
          <tr>
            <th scope="col">{interval === "hour" ? "Hour starting" : "Day (UTC)"}</th>
            <th scope="col">{metricLabel}</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={row.t}>
              <th scope="row">{row.label}</th>
              <td>{row.value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
