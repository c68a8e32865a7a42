// Shaping of the analytics answers for display: pure functions, unit-tested without a DOM.
import type { EndpointStats, Interval, Metric, Point, Summary, Window } from "../../api/types";

/** An optional BCP 47 locale; `undefined` means the browser's own. */
type Locale = string | undefined;

export const METRIC_LABELS: Record<Metric, string> = {
  tasks_created: "Tasks created",
  tasks_completed: "Tasks completed",
  users_registered: "Users registered",
  requests: "Requests",
};

export const INTERVAL_LABELS: Record<Interval, string> = {
  hour: "Hourly, last 48 hours",
  day: "Daily, last 30 days",
};

export const WINDOW_LABELS: Record<Window, string> = {
  "1h": "Last hour",
  "24h": "Last 24 hours",
  "7d": "Last 7 days",
};

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;
/** How many buckets a series shows, the current (still filling) one included. */
const SERIES_BUCKETS: Record<Interval, number> = { hour: 48, day: 30 };
const BUCKET_MS: Record<Interval, number> = { hour: HOUR_MS, day: DAY_MS };

/**
 * The `from`/`to` query of a time series ending now: `from` is the start of the bucket
 * SERIES_BUCKETS - 1 buckets before the current one, so the answer has exactly that many
 * whole buckets plus the current one. The service buckets in UTC, and so does this.
 */
export function seriesRange(interval: Interval, now: Date): { from: string; to: string } {
  const size = BUCKET_MS[interval];
  const currentBucket = Math.floor(now.getTime() / size) * size;
  const from = new Date(currentBucket - (SERIES_BUCKETS[interval] - 1) * size);
  return { from: from.toISOString(), to: now.toISOString() };
}

export interface SeriesRow {
  /** Start of the bucket (RFC 3339, UTC), as the API sent it. */
  t: string;
  /** What the axis, tooltip and data table show for the bucket. */
  label: string;
  value: number;
}

/**
 * Chart rows of a time series, oldest first. Hour buckets are labelled in the viewer's
 * time zone (`timeZone` undefined) since an hour is the same span everywhere; day buckets are
 * UTC days, so they are labelled with their UTC date: a local label would put a day west of
 * Greenwich on the previous date.
 */
export function seriesRows(
  points: readonly Point[],
  interval: Interval,
  options: { timeZone?: string; locale?: Locale } = {},
): SeriesRow[] {
  const format = new Intl.DateTimeFormat(
    options.locale,
    interval === "hour"
      ? { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: options.timeZone }
      : { month: "short", day: "numeric", timeZone: "UTC" },
  );
  return [...points]
    .sort((a, b) => Date.parse(a.t) - Date.parse(b.t))
    .map((point) => ({ t: point.t, label: format.format(new Date(point.t)), value: point.value }));
}

/** A share in [0, 1] as a percentage; three significant digits keep small rates visible. */
export function formatPercent(rate: number, locale?: Locale): string {
  return new Intl.NumberFormat(locale, { style: "percent", maximumSignificantDigits: 3 }).format(rate);
}

export function formatCount(count: number, locale?: Locale): string {
  return new Intl.NumberFormat(locale).format(count);
}

export function formatMs(ms: number, locale?: Locale): string {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: 1 }).format(ms);
}

export interface Figure {
  key: keyof Summary;
  label: string;
  value: string;
}

/** The seven summary figures, in reading order, formatted for the cards. */
export function summaryFigures(summary: Summary, locale?: Locale): Figure[] {
  const counts: [keyof Summary, string][] = [
    ["users_total", "Users"],
    ["users_active_24h", "Active users, 24 h"],
    ["tasks_total", "Tasks"],
    ["tasks_created_24h", "Tasks created, 24 h"],
    ["tasks_completed_24h", "Tasks completed, 24 h"],
    ["requests_24h", "Requests, 24 h"],
  ];
  return [
    ...counts.map(([key, label]) => ({ key, label, value: formatCount(summary[key], locale) })),
    { key: "error_rate_24h", label: "Error rate, 24 h", value: formatPercent(summary.error_rate_24h, locale) },
  ];
}

export interface EndpointRow {
  /** Unique per row: a route template has one row per method. */
  key: string;
  route: string;
  method: string;
  /** "GET /api/v1/tasks": the chart's category label. */
  name: string;
  count: number;
  errorRate: number;
  p50Ms: number;
  p95Ms: number;
}

/** Endpoint rows, busiest first; ties by route then method so the order is stable. */
export function endpointRows(items: readonly EndpointStats[]): EndpointRow[] {
  return items
    .map((item) => ({
      key: `${item.method} ${item.route}`,
      route: item.route,
      method: item.method,
      name: `${item.method} ${item.route}`,
      count: item.count,
      errorRate: item.error_rate,
      p50Ms: item.p50_ms,
      p95Ms: item.p95_ms,
    }))
    .sort((a, b) => b.count - a.count || a.route.localeCompare(b.route) || a.method.localeCompare(b.method));
}

/** How many of the busiest routes the latency chart shows; the table lists them all. */
export const LATENCY_CHART_ROUTES = 10;
