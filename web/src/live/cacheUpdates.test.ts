import { QueryClient } from "@tanstack/react-query";
import { describe, expect, it, vi } from "vitest";

import type { Task, User } from "../api/types";
import { applyLiveMessage, refetchAfterReconnect } from "./cacheUpdates";
import type { LiveMessage } from "./socket";

const OWNER: User = {
  id: "owner",
  email: "o@example.com",
  role: "user",
  active: true,
  created_at: "2026-11-28T09:00:00Z",
};
const ASSIGNEE: User = { ...OWNER, id: "assignee", email: "a@example.com" };

const TASK: Task = {
  id: "t1",
  owner_id: "owner",
  assignee_id: "assignee",
  title: "Write the report",
  description: "",
  status: "todo",
  priority: "medium",
  due_at: null,
  tags: [],
  created_at: "2026-11-28T09:00:00Z",
  updated_at: "2026-11-28T09:00:00Z",
  completed_at: null,
  version: 2,
};

function message(type: string, data: unknown): LiveMessage {
  return { type, data, id: `event-${type}`, time: "2026-11-28T09:42:14.123Z" };
}

function cacheWithDetail(task: Task) {
  const queryClient = new QueryClient();
  queryClient.setQueryData(["tasks", "detail", task.id], task);
  const invalidate = vi.spyOn(queryClient, "invalidateQueries");
  return { queryClient, invalidate };
}

describe("applyLiveMessage", () => {
  it("puts a newer version of a task in its detail and refetches the lists", () => {
    const { queryClient, invalidate } = cacheWithDetail(TASK);
    const newer = { ...TASK, title: "Write the final report", version: 3 };

    applyLiveMessage(queryClient, message("task.updated", newer), OWNER);

    expect(queryClient.getQueryData(["tasks", "detail", "t1"])).toEqual(newer);
    expect(invalidate).toHaveBeenCalledWith({ queryKey: ["tasks", "list"] });
  });

  it("keeps the cached task when the push is not newer", () => {
    const { queryClient } = cacheWithDetail(TASK);

    applyLiveMessage(queryClient, message("task.updated", { ...TASK, title: "stale", version: 1 }), OWNER);

    expect(queryClient.getQueryData(["tasks", "detail", "t1"])).toEqual(TASK);
  });

  it("does not cache tasks nobody is looking at", () => {
    const queryClient = new QueryClient();

    applyLiveMessage(queryClient, message("task.created", TASK), OWNER);

    expect(queryClient.getQueryData(["tasks", "detail", "t1"])).toBeUndefined();
  });

  it("drops the detail of a task the viewer was unassigned from", () => {
    const { queryClient } = cacheWithDetail(TASK);

    const reassigned = { ...TASK, assignee_id: "someone-else", version: 3 };

    applyLiveMessage(queryClient, message("task.assigned", reassigned), ASSIGNEE);

    expect(queryClient.getQueryData(["tasks", "detail", "t1"])).toBeUndefined();
  });

  it("removes a deleted task's detail and refetches the lists", () => {
    const { queryClient, invalidate } = cacheWithDetail(TASK);

    const deleted = { id: "t1", owner_id: "owner", assignee_id: null };

    applyLiveMessage(queryClient, message("task.deleted", deleted), OWNER);

    expect(queryClient.getQueryData(["tasks", "detail", "t1"])).toBeUndefined();
    expect(invalidate).toHaveBeenCalledWith({ queryKey: ["tasks", "list"] });
  });

  it("refetches notifications, the badge's count included, on a new notification", () => {
    const { queryClient, invalidate } = cacheWithDetail(TASK);

    applyLiveMessage(queryClient, message("notification.created", { id: "n1" }), OWNER);

    expect(invalidate).toHaveBeenCalledWith({ queryKey: ["notifications"] });
  });

  it("refetches tasks and notifications after a reconnect", () => {
    const { queryClient, invalidate } = cacheWithDetail(TASK);

    refetchAfterReconnect(queryClient);

    expect(invalidate.mock.calls.map(([filters]) => filters?.queryKey)).toEqual([["tasks"], ["notifications"]]);
  });
});
