import { useState } from "react";
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";
import type { EndpointRow } from "./analytics";
import { GRID_COLOR, SECONDARY_COLOR, SERIES_COLOR } from "./chartColors";

const ROW_HEIGHT = 36;
const AXIS_AND_LEGEND_HEIGHT = 72;
const ROUTE_LABEL_MAX_WIDTH = 200;
/** On a phone the route labels may take at most this share of the chart, leaving room for bars. */
const ROUTE_LABEL_SHARE = 0.4;

/**
 * p50 and p95 latency per route as horizontal bars, one row per route so long route
 * templates stay readable. Decorative for assistive technology: the endpoints table beside
 * it holds the same figures.
 */
export function LatencyChart({ rows }: { rows: EndpointRow[] }) {
  const [chartWidth, setChartWidth] = useState<number | null>(null);
  const labelWidth =
    chartWidth === null
      ? ROUTE_LABEL_MAX_WIDTH
      : Math.min(ROUTE_LABEL_MAX_WIDTH, Math.round(chartWidth * ROUTE_LABEL_SHARE));
  return (
    <div className="analytics-chart" aria-hidden="true">
      <p className="chart-title">p50 and p95 latency of the {rows.length} busiest routes</p>
      <ResponsiveContainer
        width="100%"
        height={rows.length * ROW_HEIGHT + AXIS_AND_LEGEND_HEIGHT}
        onResize={(width) => setChartWidth(width)}
      >
        <BarChart data={rows} layout="vertical" accessibilityLayer={false} margin={{ left: 8, right: 16 }}>
          <CartesianGrid stroke={GRID_COLOR} strokeDasharray="3 3" horizontal={false} />
          <XAxis type="number" unit=" ms" tick={{ fontSize: 12 }} />
          <YAxis type="category" dataKey="name" width={labelWidth} tick={{ fontSize: 11 }} />
          <Tooltip />
          <Legend />
          <Bar dataKey="p50Ms" name="p50 (ms)" fill={SERIES_COLOR} isAnimationActive={false} />
          <Bar dataKey="p95Ms" name="p95 (ms)" fill={SECONDARY_COLOR} isAnimationActive={false} />
        </BarChart>
      </ResponsiveContainer>
    </div>
  );
}
