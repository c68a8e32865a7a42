import {
  DEFAULT_FILTERS,
  filtersFromSearchParams,
  filtersToSearchParams,
  isFiltered,
  needsTimeZone,
  toListQuery,
  type TaskFilters,
} from "./listQuery";

const filters = (change: Partial<TaskFilters>): TaskFilters => ({ ...DEFAULT_FILTERS, ...change });

describe("toListQuery", () => {
  it("sends the default scope and sort, and nothing else, for no filters", () => {
    expect(toListQuery(DEFAULT_FILTERS, "UTC")).toEqual({ scope: "all", sort: "-created_at" });
  });

  it("maps every filter to the API's parameter", () => {
    const query = toListQuery(
      filters({
        status: "in_progress",
        priority: "urgent",
        tags: ["home", "garden"],
        scope: "assigned",
        q: "fence",
        sort: "due_at",
      }),
      "UTC",
    );
    expect(query).toEqual({
      status: "in_progress",
      priority: "urgent",
      tag: ["home", "garden"],
      scope: "assigned",
      q: "fence",
      sort: "due_at",
    });
  });

  it("turns the inclusive day range into strict RFC 3339 UTC bounds in the user's zone", () => {
    const range = filters({ dueFrom: "2026-07-01", dueUntil: "2026-07-31" });
    // Berlin is UTC+2 in July: 1 July starts at 30 June 22:00 UTC; 1 August at 31 July 22:00.
    expect(toListQuery(range, "Europe/Berlin")).toMatchObject({
      due_after: "2026-06-30T21:59:59.999Z",
      due_before: "2026-07-31T22:00:00.000Z",
    });
    // New York is UTC-4 in July.
    expect(toListQuery(range, "America/New_York")).toMatchObject({
      due_after: "2026-07-01T03:59:59.999Z",
      due_before: "2026-08-01T04:00:00.000Z",
    });
  });

  it("keeps a single-day range a whole day long across a DST change", () => {
    // 29 March 2026 in Berlin has 23 hours.
    const query = toListQuery(filters({ dueFrom: "2026-03-29", dueUntil: "2026-03-29" }), "Europe/Berlin");
    expect(query.due_after).toBe("2026-03-28T22:59:59.999Z");
    expect(query.due_before).toBe("2026-03-29T22:00:00.000Z");
  });

  it("sends one open end when only one day is given", () => {
    expect(toListQuery(filters({ dueUntil: "2026-07-31" }), "UTC")).toEqual({
      scope: "all",
      sort: "-created_at",
      due_before: "2026-08-01T00:00:00.000Z",
    });
  });
});

describe("the URL", () => {
  it("round-trips every filter", () => {
    const all = filters({
      status: "done",
      priority: "low",
      tags: ["a", "b"],
      scope: "owned",
      q: "report",
      dueFrom: "2026-07-01",
      dueUntil: "2026-07-31",
      sort: "-priority",
    });
    const params = filtersToSearchParams(all);
    expect(params.getAll("tag")).toEqual(["a", "b"]);
    expect(filtersFromSearchParams(new URLSearchParams(params.toString()))).toEqual(all);
  });

  it("leaves defaults out", () => {
    expect(filtersToSearchParams(DEFAULT_FILTERS).toString()).toBe("");
  });

  it("falls back to no filter for values the API would refuse", () => {
    const params = new URLSearchParams(
      "status=archived&priority=extreme&scope=everyone&sort=title&due_from=2026-02-30&due_until=soon",
    );
    expect(filtersFromSearchParams(params)).toEqual(DEFAULT_FILTERS);
  });

  it("normalises tags and search text as the API stores them", () => {
    const params = new URLSearchParams("tag=Home&tag=%20garden%20&tag=home&q=%20fence%20");
    expect(filtersFromSearchParams(params)).toMatchObject({ tags: ["home", "garden"], q: "fence" });
  });
});

describe("isFiltered and needsTimeZone", () => {
  it("tell filters from sorting", () => {
    expect(isFiltered(filters({ sort: "priority" }))).toBe(false);
    expect(isFiltered(filters({ tags: ["x"] }))).toBe(true);
    expect(needsTimeZone(filters({ q: "x" }))).toBe(false);
    expect(needsTimeZone(filters({ dueFrom: "2026-07-01" }))).toBe(true);
  });
});
