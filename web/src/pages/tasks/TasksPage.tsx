import { skipToken, useInfiniteQuery } from "@tanstack/react-query";
import { useCallback, useMemo } from "react";
import { useSearchParams } from "react-router";

import type { Task } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import {
  filtersFromSearchParams,
  filtersToSearchParams,
  isFiltered,
  needsTimeZone,
  toListQuery,
  type TaskFilters,
} from "./listQuery";
import { QuickAddForm } from "./QuickAddForm";
import { TaskFiltersForm, type FilterChange } from "./TaskFiltersForm";
import { TaskRow } from "./TaskRow";
import { fetchTaskPage, taskKeys } from "./taskQueries";
import { useTaskAccess, useTimeZone } from "./useTaskAccess";
import "./TasksPage.css";

export function TasksPage() {
  const [searchParams, setSearchParams] = useSearchParams();
  const filters = useMemo(() => filtersFromSearchParams(searchParams), [searchParams]);

  const changeFilters = useCallback<FilterChange>(
    (change, options) =>
      setSearchParams(
        (current) => filtersToSearchParams({ ...filtersFromSearchParams(current), ...change }),
        { replace: options?.replace ?? false },
      ),
    [setSearchParams],
  );

  return (
    <div className="tasks-page">
      <h1>Tasks</h1>
      <QuickAddForm />
      <TaskFiltersForm filters={filters} onChange={changeFilters} />
      <TaskList filters={filters} />
    </div>
  );
}

/** Tasks without repeats: a task moved between pages while they loaded shows once. */
function uniqueTasks(pages: { items: Task[] }[]): Task[] {
  const byId = new Map<string, Task>();
  for (const task of pages.flatMap((page) => page.items)) {
    if (!byId.has(task.id)) {
      byId.set(task.id, task);
    }
  }
  return [...byId.values()];
}

function TaskList({ filters }: { filters: TaskFilters }) {
  const timeZone = useTimeZone();
  const accessTo = useTaskAccess();
  // A due-date filter is a day in the user's zone: wait for the zone before asking.
  const listQuery =
    timeZone === null && needsTimeZone(filters) ? null : toListQuery(filters, timeZone ?? "UTC");

  const tasks = useInfiniteQuery({
    queryKey: listQuery === null ? [...taskKeys.lists, "waiting-for-time-zone"] : taskKeys.list(listQuery),
    queryFn:
      listQuery === null
        ? skipToken
        : ({ pageParam, signal }) => fetchTaskPage(listQuery, pageParam, signal),
    initialPageParam: null as string | null,
    getNextPageParam: (page) => page.next_cursor,
  });

  if (tasks.data === undefined) {
    return tasks.isError ? (
      <ErrorMessage error={tasks.error} onRetry={() => void tasks.refetch()} />
    ) : (
      <Loading label="Loading tasks" />
    );
  }

  const items = uniqueTasks(tasks.data.pages);
  if (items.length === 0) {
    return (
      <p className="task-list-empty">
        {isFiltered(filters) ? "No tasks match these filters." : "No tasks yet: add one above."}
      </p>
    );
  }

  const now = new Date();
  return (
    <>
      <ul aria-label="Tasks" className="task-list">
        {items.map((task) => (
          <TaskRow key={task.id} task={task} access={accessTo(task)} timeZone={timeZone} now={now} />
        ))}
      </ul>
      {/* A failed next page or background refresh keeps what was already shown. */}
      {tasks.isError && <ErrorMessage error={tasks.error} />}
      {tasks.hasNextPage && (
        <div className="task-list-more">
          <button
            type="button"
            className="btn"
            disabled={tasks.isFetchingNextPage}
            onClick={() => void tasks.fetchNextPage()}
          >
            Load more
          </button>
          {tasks.isFetchingNextPage && <Loading label="Loading more tasks" />}
        </div>
      )}
    </>
  );
}
