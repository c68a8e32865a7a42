/**
 * The task pages' server state: react-query keys and the calls behind them.
 *
 * The keys are the shared contract's: the live-update provider invalidates and patches
 * exactly these, so the pages stay current without polling.
 */
import { queryOptions, type QueryClient } from "@tanstack/react-query";

import { api, unwrap } from "../../api/client";
import type { Attachment, Profile, Task, TaskPage, TaskPatch, UserSummary } from "../../api/types";
import type { TaskListQuery } from "./listQuery";

export const PAGE_SIZE = 20;

export const taskKeys = {
  lists: ["tasks", "list"] as const,
  list: (query: TaskListQuery) => ["tasks", "list", query] as const,
  detail: (taskId: string) => ["tasks", "detail", taskId] as const,
  attachments: (taskId: string) => ["tasks", "attachments", taskId] as const,
};

export const profileKey = ["users", "me"] as const;

/** Names of users learned from an assignee lookup: the API has no other way to get them. */
export const userSummaryKey = (userId: string) => ["users", "summary", userId] as const;

export async function fetchTaskPage(
  query: TaskListQuery,
  cursor: string | null,
  signal?: AbortSignal,
): Promise<TaskPage> {
  const result = await api.GET("/api/v1/tasks", {
    params: { query: { ...query, limit: PAGE_SIZE, ...(cursor === null ? {} : { cursor }) } },
    signal,
  });
  return unwrap(result);
}

export function taskDetailQuery(taskId: string) {
  return queryOptions({
    queryKey: taskKeys.detail(taskId),
    queryFn: async ({ signal }): Promise<Task> =>
      unwrap(await api.GET("/api/v1/tasks/{id}", { params: { path: { id: taskId } }, signal })),
  });
}

export function attachmentsQuery(taskId: string) {
  return queryOptions({
    queryKey: taskKeys.attachments(taskId),
    queryFn: async ({ signal }): Promise<Attachment[]> =>
      unwrap(
        await api.GET("/api/v1/tasks/{id}/attachments", {
          params: { path: { id: taskId } },
          signal,
        }),
      ),
  });
}

export function profileQuery() {
  return queryOptions({
    queryKey: profileKey,
    queryFn: async ({ signal }): Promise<Profile> =>
      unwrap(await api.GET("/api/v1/users/me", { signal })),
    staleTime: 5 * 60_000,
  });
}

/** The `If-Match` value for a task at `version`: the ETag the API answered with. */
export function ifMatch(version: number): string {
  return `"${version}"`;
}

/**
 * Change `patch`'s fields of `task`, on condition that the server still has `task.version`
 * (else ApiError 412).
 */
export async function patchTask(task: Pick<Task, "id" | "version">, patch: TaskPatch): Promise<Task> {
  const result = await api.PATCH("/api/v1/tasks/{id}", {
    params: { path: { id: task.id }, header: { "if-match": ifMatch(task.version) } },
    body: patch,
  });
  return unwrap(result);
}

export async function lookupUser(email: string): Promise<UserSummary> {
  return unwrap(await api.GET("/api/v1/users/lookup", { params: { query: { email } } }));
}

/**
 * Put a task the server just answered into the cache: its detail (unless the cache
 * already holds a newer version, e.g. from a live update) and, by refetching, every list.
 */
export function rememberTask(queryClient: QueryClient, task: Task): Promise<void> {
  queryClient.setQueryData<Task>(taskKeys.detail(task.id), (cached) =>
    cached !== undefined && cached.version > task.version ? cached : task,
  );
  return queryClient.invalidateQueries({ queryKey: taskKeys.lists });
}
