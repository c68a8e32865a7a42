/** Who may do what with a task, and in which zone the signed-in user reads times. */
import { useQuery } from "@tanstack/react-query";

import type { Task } from "../../api/types";
import { browserTimeZone, isValidTimeZone } from "../../lib/time";
import { useSession } from "../../session/SessionProvider";
import { profileQuery } from "./taskQueries";

export interface TaskAccess {
  /** Owner or admin: every writable field, assignment, attachments, delete. */
  canEdit: boolean;
  /** The assignee, besides those who can edit, may change the status. */
  canChangeStatus: boolean;
  isAssignee: boolean;
}

export function taskAccess(task: Task, userId: string | null, isAdmin: boolean): TaskAccess {
  const isOwner = userId !== null && task.owner_id === userId;
  const isAssignee = userId !== null && task.assignee_id === userId;
  const canEdit = isOwner || isAdmin;
  return { canEdit, canChangeStatus: canEdit || isAssignee, isAssignee };
}

/** The access of the signed-in user to tasks, as a function of the task. */
export function useTaskAccess(): (task: Task) => TaskAccess {
  const { user } = useSession();
  const userId = user?.id ?? null;
  const isAdmin = user?.role === "admin";
  return (task) => taskAccess(task, userId, isAdmin);
}

/**
 * The zone of the user's profile, or null until it is known. Should the profile fail to
 * load, the browser's zone stands in, so the pages still work.
 */
export function useTimeZone(): string | null {
  const profile = useQuery(profileQuery());
  if (profile.data !== undefined && isValidTimeZone(profile.data.timezone)) {
    return profile.data.timezone;
  }
  return profile.isError || profile.data !== undefined ? browserTimeZone() : null;
}
