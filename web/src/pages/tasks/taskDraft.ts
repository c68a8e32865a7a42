/**
 * The edit form's values ("draft") for a task, and the PATCH that turns the task into them.
 *
 * The draft holds what inputs hold: the due date as a datetime-local value in the user's
 * zone, the tags as comma-separated text. The PATCH names only the fields that differ, so
 * an assignee's status change never carries another field (which the API would refuse).
 */
import type { Priority, Status, Task, TaskPatch } from "../../api/types";
import { localInputToUtc, utcToLocalInput } from "../../lib/time";
import { parseTags } from "./taskLabels";

/** The fields a form edits, by who is editing: all of them, the status, or none. */
export type EditableFields = "all" | "status" | "none";

export interface TaskDraft {
  title: string;
  description: string;
  status: Status;
  priority: Priority;
  /** datetime-local in the user's zone; "" for no due date. */
  due: string;
  /** Comma-separated. */
  tags: string;
}

export function draftOf(task: Task, timeZone: string): TaskDraft {
  return {
    title: task.title,
    description: task.description,
    status: task.status,
    priority: task.priority,
    due: task.due_at === null ? "" : utcToLocalInput(task.due_at, timeZone),
    tags: task.tags.join(", "),
  };
}

/**
 * The fields of `draft` that differ from `task`, among those `editable` names.
 *
 * The due date compares as shown (to the minute, in the zone), so a due date set elsewhere
 * with seconds is not "changed" by merely opening the form.
 */
export function changesBetween(
  task: Task,
  draft: TaskDraft,
  timeZone: string,
  editable: EditableFields = "all",
): TaskPatch {
  const patch: TaskPatch = {};
  if (editable === "none") {
    return patch;
  }
  if (draft.status !== task.status) patch.status = draft.status;
  if (editable === "status") {
    return patch;
  }
  const shown = draftOf(task, timeZone);
  const title = draft.title.trim();
  if (title !== task.title) patch.title = title;
  if (draft.description !== task.description) patch.description = draft.description;
  if (draft.priority !== task.priority) patch.priority = draft.priority;
  if (draft.due !== shown.due) {
    patch.due_at = draft.due === "" ? null : localInputToUtc(draft.due, timeZone);
  }
  const tags = parseTags(draft.tags);
  if (tags.join(",") !== task.tags.join(",")) patch.tags = tags;
  return patch;
}

export function isEmptyPatch(patch: TaskPatch): boolean {
  return Object.keys(patch).length === 0;
}

/**
 * Whether two versions of a task agree on every field the form edits: a newer version
 * that changed only other fields (the assignee, say) cannot conflict with the draft.
 */
export function sameEditedFields(a: Task, b: Task, editable: EditableFields): boolean {
  if (editable === "none") {
    return true;
  }
  if (editable === "status") {
    return a.status === b.status;
  }
  return (
    a.title === b.title &&
    a.description === b.description &&
    a.status === b.status &&
    a.priority === b.priority &&
    a.due_at === b.due_at &&
    a.tags.join(",") === b.tags.join(",")
  );
}
