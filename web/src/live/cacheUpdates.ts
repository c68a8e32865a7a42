/** How a pushed change updates react-query's cache (query keys: see the web contract). */
import type { QueryClient } from "@tanstack/react-query";

import type { Task, User } from "../api/types";
import type { LiveMessage } from "./socket";

const TASK_CHANGES = new Set(["task.created", "task.updated", "task.assigned", "task.completed"]);

export function applyLiveMessage(queryClient: QueryClient, message: LiveMessage, viewer: User | null): void {
  if (TASK_CHANGES.has(message.type) && isTask(message.data)) {
    applyTaskChange(queryClient, message.data, viewer);
  } else if (message.type === "task.deleted" && hasId(message.data)) {
    queryClient.removeQueries({ queryKey: ["tasks", "detail", message.data.id], exact: true });
    void queryClient.invalidateQueries({ queryKey: ["tasks", "list"] });
  } else if (message.type === "notification.created") {
    void queryClient.invalidateQueries({ queryKey: ["notifications"] });
  }
}

/** After a reconnect: what was pushed while the socket was down is lost, so refetch it. */
export function refetchAfterReconnect(queryClient: QueryClient): void {
  void queryClient.invalidateQueries({ queryKey: ["tasks"] });
  void queryClient.invalidateQueries({ queryKey: ["notifications"] });
}

function applyTaskChange(queryClient: QueryClient, task: Task, viewer: User | null): void {
  const detailKey = ["tasks", "detail", task.id];
  if (viewer !== null && !canSee(viewer, task)) {
    // The viewer was unassigned: the task has left their view.
    queryClient.removeQueries({ queryKey: detailKey, exact: true });
  } else {
    // Only a task someone is looking at is updated; an older push never overwrites a newer read.
    queryClient.setQueryData<Task>(detailKey, (cached) =>
      cached === undefined || cached.version >= task.version ? cached : task,
    );
  }
  void queryClient.invalidateQueries({ queryKey: ["tasks", "list"] });
}

function canSee(viewer: User, task: Task): boolean {
  return viewer.role === "admin" || task.owner_id === viewer.id || task.assignee_id === viewer.id;
}

function hasId(data: unknown): data is { id: string } {
  return typeof data === "object" && data !== null && typeof (data as { id?: unknown }).id === "string";
}

function isTask(data: unknown): data is Task {
  return hasId(data) && typeof (data as { version?: unknown }).version === "number";
}
