/**
 * The task list's filters: as the page's URL holds them, and as the API's list query.
 *
 * The URL is the single source of truth for what the list shows, so a reload or a shared
 * link restores it. Values that make no sense (an unknown status, a date that does not
 * exist) fall back to "no filter" rather than producing a 422 from the API.
 */
import type { Priority, Scope, SortOrder, Status } from "../../api/types";
import { dayStartUtc, isLocalDate } from "../../lib/time";
import { PRIORITIES, SCOPES, SORT_ORDERS, STATUSES, isOneOf, parseTags } from "./taskLabels";

export interface TaskFilters {
  /** "" means any. */
  status: Status | "";
  /** "" means any. */
  priority: Priority | "";
  /** Every tag must match. */
  tags: string[];
  scope: Scope;
  /** Substring of title or description; "" means no search. */
  q: string;
  /** First day (in the user's zone) a due date may fall on, "yyyy-MM-dd"; "" means open. */
  dueFrom: string;
  /** Last day (in the user's zone) a due date may fall on, "yyyy-MM-dd"; "" means open. */
  dueUntil: string;
  sort: SortOrder;
}

export const DEFAULT_FILTERS: TaskFilters = {
  status: "",
  priority: "",
  tags: [],
  scope: "all",
  q: "",
  dueFrom: "",
  dueUntil: "",
  sort: "-created_at",
};

/** The API's list query (API.md "Tasks"), without paging. */
export interface TaskListQuery {
  status?: Status;
  priority?: Priority;
  tag?: string[];
  scope: Scope;
  q?: string;
  due_before?: string;
  due_after?: string;
  sort: SortOrder;
}

/** Names of the page's URL parameters. */
const PARAM = {
  status: "status",
  priority: "priority",
  tag: "tag",
  scope: "scope",
  q: "q",
  dueFrom: "due_from",
  dueUntil: "due_until",
  sort: "sort",
} as const;

export function filtersFromSearchParams(params: URLSearchParams): TaskFilters {
  const status = params.get(PARAM.status) ?? "";
  const priority = params.get(PARAM.priority) ?? "";
  const scope = params.get(PARAM.scope) ?? "";
  const sort = params.get(PARAM.sort) ?? "";
  const dueFrom = params.get(PARAM.dueFrom) ?? "";
  const dueUntil = params.get(PARAM.dueUntil) ?? "";
  return {
    status: isOneOf(STATUSES, status) ? status : DEFAULT_FILTERS.status,
    priority: isOneOf(PRIORITIES, priority) ? priority : DEFAULT_FILTERS.priority,
    tags: parseTags(params.getAll(PARAM.tag).join(",")),
    scope: isOneOf(SCOPES, scope) ? scope : DEFAULT_FILTERS.scope,
    q: (params.get(PARAM.q) ?? "").trim(),
    dueFrom: isLocalDate(dueFrom) ? dueFrom : "",
    dueUntil: isLocalDate(dueUntil) ? dueUntil : "",
    sort: isOneOf(SORT_ORDERS, sort) ? sort : DEFAULT_FILTERS.sort,
  };
}

/** The URL parameters for `filters`; defaults are left out to keep links short. */
export function filtersToSearchParams(filters: TaskFilters): URLSearchParams {
  const params = new URLSearchParams();
  if (filters.q !== "") params.set(PARAM.q, filters.q);
  if (filters.status !== "") params.set(PARAM.status, filters.status);
  if (filters.priority !== "") params.set(PARAM.priority, filters.priority);
  for (const tag of filters.tags) params.append(PARAM.tag, tag);
  if (filters.scope !== DEFAULT_FILTERS.scope) params.set(PARAM.scope, filters.scope);
  if (filters.dueFrom !== "") params.set(PARAM.dueFrom, filters.dueFrom);
  if (filters.dueUntil !== "") params.set(PARAM.dueUntil, filters.dueUntil);
  if (filters.sort !== DEFAULT_FILTERS.sort) params.set(PARAM.sort, filters.sort);
  return params;
}

/** Whether the filters hold a calendar day, which needs the user's zone to become a query. */
export function needsTimeZone(filters: TaskFilters): boolean {
  return filters.dueFrom !== "" || filters.dueUntil !== "";
}

/**
 * The API list query for `filters`, reading their days in `timeZone`.
 *
 * The API compares strictly (`due_after` is `>`, `due_before` is `<`), so the inclusive
 * day range [dueFrom, dueUntil] becomes "after the millisecond before dueFrom starts" and
 * "before the day after dueUntil starts".
 */
export function toListQuery(filters: TaskFilters, timeZone: string): TaskListQuery {
  const query: TaskListQuery = { scope: filters.scope, sort: filters.sort };
  if (filters.status !== "") query.status = filters.status;
  if (filters.priority !== "") query.priority = filters.priority;
  if (filters.tags.length > 0) query.tag = [...filters.tags];
  if (filters.q !== "") query.q = filters.q;
  if (filters.dueFrom !== "") {
    const start = Date.parse(dayStartUtc(filters.dueFrom, timeZone));
    query.due_after = new Date(start - 1).toISOString();
  }
  if (filters.dueUntil !== "") {
    query.due_before = dayStartUtc(filters.dueUntil, timeZone, 1);
  }
  return query;
}

/** Whether any filter narrows the list (the sort does not). */
export function isFiltered(filters: TaskFilters): boolean {
  return (
    filters.status !== "" ||
    filters.priority !== "" ||
    filters.tags.length > 0 ||
    filters.scope !== DEFAULT_FILTERS.scope ||
    filters.q !== "" ||
    filters.dueFrom !== "" ||
    filters.dueUntil !== ""
  );
}
