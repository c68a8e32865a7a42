import type { EndpointStats, Summary } from "../../api/types";
import {
  endpointRows,
  formatMs,
  formatPercent,
  seriesRange,
  seriesRows,
  summaryFigures,
} from "./analytics";

describe("seriesRange", () => {
  const now = new Date("2026-11-28T09:42:14.123Z");

  it("starts 47 whole hours before the current hour, so 48 hourly buckets end now", () => {
    expect(seriesRange("hour", now)).toEqual({
      from: "2026-11-26T10:00:00.000Z",
      to: "2026-11-28T09:42:14.123Z",
    });
  });

  it("starts 29 UTC days before today, so 30 daily buckets end now", () => {
    expect(seriesRange("day", now)).toEqual({
      from: "2026-10-30T00:00:00.000Z",
      to: "2026-11-28T09:42:14.123Z",
    });
  });
});

describe("seriesRows", () => {
  it("orders points oldest first and labels hours in the viewer's time zone", () => {
    const rows = seriesRows(
      [
        { t: "2026-11-28T10:00:00Z", value: 7 },
        { t: "2026-11-28T09:00:00Z", value: 3 },
      ],
      "hour",
      { timeZone: "Asia/Kolkata", locale: "en-GB" },
    );
    expect(rows).toEqual([
      { t: "2026-11-28T09:00:00Z", label: "28 Nov, 14:30", value: 3 },
      { t: "2026-11-28T10:00:00Z", label: "28 Nov, 15:30", value: 7 },
    ]);
  });

  it("labels a day bucket with its UTC date whatever the viewer's zone", () => {
    const rows = seriesRows([{ t: "2026-11-28T00:00:00Z", value: 12 }], "day", {
      timeZone: "America/Los_Angeles",
      locale: "en-US",
    });
    // Midnight UTC is still Nov 27 in Los Angeles; the bucket is the UTC day Nov 28.
    expect(rows).toEqual([{ t: "2026-11-28T00:00:00Z", label: "Nov 28", value: 12 }]);
  });

  it("gives no rows for no points", () => {
    expect(seriesRows([], "day")).toEqual([]);
  });
});

describe("formatPercent", () => {
  it.each([
    [0, "0%"],
    [0.0123, "1.23%"],
    [0.5, "50%"],
    [1, "100%"],
    // A rare error must not round away to 0%.
    [0.00001, "0.001%"],
  ])("shows %s as %s", (rate, shown) => {
    expect(formatPercent(rate, "en-US")).toBe(shown);
  });
});

it("formatMs keeps at most one decimal", () => {
  expect(formatMs(12.345, "en-US")).toBe("12.3");
  expect(formatMs(1500, "en-US")).toBe("1,500");
});

it("summaryFigures lists the seven figures with the error rate as a percentage", () => {
  const summary: Summary = {
    users_total: 1234,
    users_active_24h: 56,
    tasks_total: 100000,
    tasks_created_24h: 42,
    tasks_completed_24h: 17,
    requests_24h: 98765,
    error_rate_24h: 0.0042,
  };
  expect(summaryFigures(summary, "en-US").map(({ label, value }) => [label, value])).toEqual([
    ["Users", "1,234"],
    ["Active users, 24 h", "56"],
    ["Tasks", "100,000"],
    ["Tasks created, 24 h", "42"],
    ["Tasks completed, 24 h", "17"],
    ["Requests, 24 h", "98,765"],
    ["Error rate, 24 h", "0.42%"],
  ]);
});

describe("endpointRows", () => {
  const stats = (route: string, method: string, count: number): EndpointStats => ({
    route,
    method,
    count,
    error_rate: 0.01,
    p50_ms: 4,
    p95_ms: 20,
  });

  it("puts the busiest first, ties by route then method", () => {
    const rows = endpointRows([
      stats("/api/v1/users/me", "GET", 5),
      stats("/api/v1/tasks/{id}", "PATCH", 9),
      stats("/api/v1/tasks", "POST", 9),
      stats("/api/v1/tasks", "GET", 9),
      stats("/api/v1/tasks", "DELETE", 40),
    ]);
    expect(rows.map((row) => row.name)).toEqual([
      "DELETE /api/v1/tasks",
      "GET /api/v1/tasks",
      "POST /api/v1/tasks",
      "PATCH /api/v1/tasks/{id}",
      "GET /api/v1/users/me",
    ]);
  });

  it("keeps one uniquely keyed row per route and method with its figures", () => {
    const [row] = endpointRows([{ ...stats("/api/v1/tasks", "GET", 3), p50_ms: 1.5, p95_ms: 9.75 }]);
    expect(row).toEqual({
      key: "GET /api/v1/tasks",
      name: "GET /api/v1/tasks",
      route: "/api/v1/tasks",
      method: "GET",
      count: 3,
      errorRate: 0.01,
      p50Ms: 1.5,
      p95Ms: 9.75,
    });
  });
});
