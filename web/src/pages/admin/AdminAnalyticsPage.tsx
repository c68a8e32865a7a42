import { useQuery } from "@tanstack/react-query";
import { useId, useMemo, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { Interval, Metric, Window } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import {
  INTERVAL_LABELS,
  LATENCY_CHART_ROUTES,
  METRIC_LABELS,
  WINDOW_LABELS,
  endpointRows,
  formatCount,
  formatMs,
  formatPercent,
  seriesRange,
  seriesRows,
  summaryFigures,
} from "./analytics";
import { LatencyChart } from "./LatencyChart";
import { TimeseriesChart } from "./TimeseriesChart";
import "./admin.css";

export function AdminAnalyticsPage() {
  return (
    <div className="admin-page stack">
      <h1>Analytics</h1>
      <SummarySection />
      <TimeseriesSection />
      <EndpointsSection />
    </div>
  );
}

function SummarySection() {
  const headingId = useId();
  const summary = useQuery({
    queryKey: ["analytics", "summary"],
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/analytics/summary", { signal })),
  });
  return (
    <section aria-labelledby={headingId} className="stack">
      <h2 id={headingId}>Summary</h2>
      {summary.isPending ? (
        <Loading label="Loading summary" />
      ) : !summary.data ? (
        <ErrorMessage error={summary.error} onRetry={() => void summary.refetch()} />
      ) : (
        <dl className="figure-grid">
          {summaryFigures(summary.data).map((figure) => (
            <div key={figure.key} className="card figure">
              <dt>{figure.label}</dt>
              <dd>{figure.value}</dd>
            </div>
          ))}
        </dl>
      )}
    </section>
  );
}

const METRICS = Object.keys(METRIC_LABELS) as Metric[];
const INTERVALS = Object.keys(INTERVAL_LABELS) as Interval[];
const WINDOWS = Object.keys(WINDOW_LABELS) as Window[];

function TimeseriesSection() {
  const headingId = useId();
  const metricId = useId();
  const intervalId = useId();
  const [metric, setMetric] = useState<Metric>("tasks_created");
  const [interval, setBucketInterval] = useState<Interval>("hour");
  const series = useQuery({
    queryKey: ["analytics", "timeseries", { metric, interval }],
    // The range ends at the moment of each fetch, so a refetch moves the window forward.
    queryFn: async ({ signal }) =>
      unwrap(
        await api.GET("/api/v1/analytics/timeseries", {
          params: { query: { metric, interval, ...seriesRange(interval, new Date()) } },
          signal,
        }),
      ),
  });
  const rows = useMemo(() => (series.data ? seriesRows(series.data.points, interval) : []), [series.data, interval]);
  const caption = `${METRIC_LABELS[metric]}, ${INTERVAL_LABELS[interval].toLowerCase()}`;

  return (
    <section aria-labelledby={headingId} className="stack">
      <h2 id={headingId}>Activity over time</h2>
      <div className="filters">
        <div className="field">
          <label htmlFor={metricId}>Metric</label>
          <select id={metricId} value={metric} onChange={(event) => setMetric(event.target.value as Metric)}>
            {METRICS.map((value) => (
              <option key={value} value={value}>
                {METRIC_LABELS[value]}
              </option>
            ))}
          </select>
        </div>
        <div className="field">
          <label htmlFor={intervalId}>Interval</label>
          <select
            id={intervalId}
            value={interval}
            onChange={(event) => setBucketInterval(event.target.value as Interval)}
          >
            {INTERVALS.map((value) => (
              <option key={value} value={value}>
                {INTERVAL_LABELS[value]}
              </option>
            ))}
          </select>
        </div>
      </div>
      {series.isPending ? (
        <Loading label="Loading time series" />
      ) : !series.data ? (
        <ErrorMessage error={series.error} onRetry={() => void series.refetch()} />
      ) : rows.length === 0 ? (
        <p>No data for this period.</p>
      ) : (
        <TimeseriesChart rows={rows} interval={interval} metricLabel={METRIC_LABELS[metric]} caption={caption} />
      )}
    </section>
  );
}

function EndpointsSection() {
  const headingId = useId();
  const windowId = useId();
  const captionId = useId();
  const [timeWindow, setTimeWindow] = useState<Window>("24h");
  const endpoints = useQuery({
    queryKey: ["analytics", "endpoints", { window: timeWindow }],
    queryFn: async ({ signal }) =>
      unwrap(await api.GET("/api/v1/analytics/endpoints", { params: { query: { window: timeWindow } }, signal })),
  });
  const rows = useMemo(() => (endpoints.data ? endpointRows(endpoints.data.items) : []), [endpoints.data]);

  return (
    <section aria-labelledby={headingId} className="stack">
      <h2 id={headingId}>Endpoints</h2>
      <div className="filters">
        <div className="field">
          <label htmlFor={windowId}>Window</label>
          <select id={windowId} value={timeWindow} onChange={(event) => setTimeWindow(event.target.value as Window)}>
            {WINDOWS.map((value) => (
              <option key={value} value={value}>
                {WINDOW_LABELS[value]}
              </option>
            ))}
          </select>
        </div>
      </div>
      {endpoints.isPending ? (
        <Loading label="Loading endpoints" />
      ) : !endpoints.data ? (
        <ErrorMessage error={endpoints.error} onRetry={() => void endpoints.refetch()} />
      ) : rows.length === 0 ? (
        <p>No requests recorded in this window.</p>
      ) : (
        <>
          {/* The table may scroll sideways on narrow screens and holds nothing focusable, so the
              region itself takes focus: keyboard users can then scroll it (WCAG 2.1.1). */}
          {/* eslint-disable-next-line jsx-a11y/no-noninteractive-tabindex */}
          <div className="table-scroll" role="region" aria-labelledby={captionId} tabIndex={0}>
            <table className="data-table">
              <caption id={captionId}>
                Requests per route, {WINDOW_LABELS[timeWindow].toLowerCase()}, busiest first
              </caption>
              <thead>
                <tr>
                  <th scope="col">Route</th>
                  <th scope="col">Method</th>
                  <th scope="col" className="num">
                    Requests
                  </th>
                  <th scope="col" className="num">
                    Error rate
                  </th>
                  <th scope="col" className="num">
                    p50 (ms)
                  </th>
                  <th scope="col" className="num">
                    p95 (ms)
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((row) => (
                  <tr key={row.key}>
                    <th scope="row" className="route">
                      {row.route}
                    </th>
                    <td>{row.method}</td>
                    <td className="num">{formatCount(row.count)}</td>
                    <td className="num">{formatPercent(row.errorRate)}</td>
                    <td className="num">{formatMs(row.p50Ms)}</td>
                    <td className="num">{formatMs(row.p95Ms)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <LatencyChart rows={rows.slice(0, LATENCY_CHART_ROUTES)} />
        </>
      )}
    </section>
  );
}
