/** Words shown for the API's enumerations, in the order the UI offers them. */
import type { Priority, Scope, SortOrder, Status } from "../../api/types";

export const STATUS_LABELS: Record<Status, string> = {
  todo: "To do",
  in_progress: "In progress",
  done: "Done",
};

export const PRIORITY_LABELS: Record<Priority, string> = {
  low: "Low",
  medium: "Medium",
  high: "High",
  urgent: "Urgent",
};

export const SCOPE_LABELS: Record<Scope, string> = {
  all: "Owned or assigned",
  owned: "Owned by me",
  assigned: "Assigned to me",
};

export const SORT_LABELS: Record<SortOrder, string> = {
  "-created_at": "Newest first",
  created_at: "Oldest first",
  due_at: "Due soonest",
  "-due_at": "Due latest",
  "-priority": "Highest priority",
  priority: "Lowest priority",
  "-updated_at": "Recently updated",
};

export const STATUSES = Object.keys(STATUS_LABELS) as Status[];
export const PRIORITIES = Object.keys(PRIORITY_LABELS) as Priority[];
export const SCOPES = Object.keys(SCOPE_LABELS) as Scope[];
export const SORT_ORDERS = Object.keys(SORT_LABELS) as SortOrder[];

export function isOneOf<T extends string>(values: readonly T[], value: string): value is T {
  return (values as readonly string[]).includes(value);
}

/**
 * Tags as the API stores them: trimmed, lower-cased, de-duplicated, in the order given.
 * `text` is what a person types: tags separated by commas.
 */
export function parseTags(text: string): string[] {
  const tags = text
    .split(",")
    .map((tag) => tag.trim().toLowerCase())
    .filter((tag) => tag !== "");
  return [...new Set(tags)];
}
