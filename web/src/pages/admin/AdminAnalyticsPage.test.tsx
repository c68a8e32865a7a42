import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { EndpointList, Summary, Timeseries } from "../../api/types";
import { AdminAnalyticsPage } from "./AdminAnalyticsPage";
import { formatCount, formatMs, formatPercent } from "./analytics";

// The charts' SVG is not checked here: ResponsiveContainer measures 0×0 in jsdom. These tests
// cover what the page asks for and the tables that carry the same figures. Expected numbers
// go through the page's formatters, so the tests pass in any default locale (analytics.test.ts
// checks the formatting itself).

const fakeApi = vi.hoisted(() => ({ GET: vi.fn() }));

vi.mock("../../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../api/client")>()),
  api: fakeApi,
}));

const summary: Summary = {
  users_total: 12,
  users_active_24h: 5,
  tasks_total: 340,
  tasks_created_24h: 21,
  tasks_completed_24h: 8,
  requests_24h: 4567,
  error_rate_24h: 0.0125,
};
const endpoints: EndpointList = {
  items: [
    { route: "/api/v1/users/me", method: "GET", count: 10, error_rate: 0, p50_ms: 3, p95_ms: 9 },
    { route: "/api/v1/tasks", method: "GET", count: 250, error_rate: 0.004, p50_ms: 12.25, p95_ms: 80 },
  ],
};
const series: Timeseries = {
  points: [
    { t: "2026-11-28T08:00:00Z", value: 4 },
    { t: "2026-11-28T09:00:00Z", value: 6 },
  ],
};

function answer(data: unknown) {
  return { data, response: new Response(JSON.stringify(data), { status: 200 }) };
}

beforeEach(() => {
  vi.stubGlobal(
    "ResizeObserver",
    class {
      observe() {}
      unobserve() {}
      disconnect() {}
    },
  );
  fakeApi.GET.mockImplementation(async (path: string) => {
    if (path === "/api/v1/analytics/summary") return answer(summary);
    if (path === "/api/v1/analytics/endpoints") return answer(endpoints);
    if (path === "/api/v1/analytics/timeseries") return answer(series);
    throw new Error(`unexpected GET ${path}`);
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
});

function renderPage() {
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={queryClient}>
      <AdminAnalyticsPage />
    </QueryClientProvider>,
  );
}

it("shows the summary figures with the error rate as a percentage", async () => {
  renderPage();

  expect(screen.getByRole("heading", { level: 1, name: "Analytics" })).toBeInTheDocument();
  const errorRate = await screen.findByText("Error rate, 24 h");
  expect(errorRate.nextElementSibling?.textContent).toBe(formatPercent(0.0125));
  expect(screen.getByText("Requests, 24 h").nextElementSibling?.textContent).toBe(formatCount(4567));
});

it("lists endpoints busiest first and asks for the chosen window", async () => {
  renderPage();

  const table = await screen.findByRole("table", { name: /Requests per route, last 24 hours/ });
  const cells = (row: HTMLElement) =>
    [...within(row).getAllByRole("rowheader"), ...within(row).getAllByRole("cell")].map((cell) => cell.textContent);
  const [first, second] = within(table).getAllByRole("row").slice(1).map(cells);
  expect(first).toEqual(["/api/v1/tasks", "GET", "250", formatPercent(0.004), formatMs(12.25), "80"]);
  expect(second).toEqual(["/api/v1/users/me", "GET", "10", formatPercent(0), "3", "9"]);

  await userEvent.selectOptions(screen.getByRole("combobox", { name: "Window" }), "7d");

  expect(await screen.findByRole("table", { name: /last 7 days/ })).toBeInTheDocument();
  expect(fakeApi.GET).toHaveBeenCalledWith("/api/v1/analytics/endpoints", {
    params: { query: { window: "7d" } },
    signal: expect.any(AbortSignal),
  });
});

it("asks for the last 48 hours of the chosen metric and gives its points as a table", async () => {
  renderPage();

  const table = await screen.findByRole("table", { name: "Tasks created, hourly, last 48 hours" });
  expect(within(table).getAllByRole("row")).toHaveLength(3);
  const [, options] = fakeApi.GET.mock.calls.find(([path]) => path === "/api/v1/analytics/timeseries")!;
  const { metric, interval, from, to } = options.params.query;
  expect([metric, interval]).toEqual(["tasks_created", "hour"]);
  expect(Date.parse(to) - Date.parse(from)).toBeGreaterThan(47 * 3600_000);
  expect(Date.parse(to) - Date.parse(from)).toBeLessThanOrEqual(48 * 3600_000);

  await userEvent.selectOptions(screen.getByRole("combobox", { name: "Metric" }), "requests");
  await userEvent.selectOptions(screen.getByRole("combobox", { name: "Interval" }), "day");

  expect(await screen.findByRole("table", { name: "Requests, daily, last 30 days" })).toBeInTheDocument();
  expect(fakeApi.GET).toHaveBeenLastCalledWith("/api/v1/analytics/timeseries", {
    params: { query: expect.objectContaining({ metric: "requests", interval: "day" }) },
    signal: expect.any(AbortSignal),
  });
});
