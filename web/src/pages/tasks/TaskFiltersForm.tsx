import { useCallback, useId, type ChangeEvent } from "react";

import type { Priority, Scope, SortOrder, Status } from "../../api/types";
import { DebouncedTextInput } from "./DebouncedTextInput";
import { DEFAULT_FILTERS, isFiltered, type TaskFilters } from "./listQuery";
import {
  PRIORITIES,
  PRIORITY_LABELS,
  SCOPES,
  SCOPE_LABELS,
  SORT_LABELS,
  SORT_ORDERS,
  STATUSES,
  STATUS_LABELS,
  parseTags,
} from "./taskLabels";

export type FilterChange = (change: Partial<TaskFilters>, options?: { replace?: boolean }) => void;

interface TaskFiltersFormProps {
  filters: TaskFilters;
  onChange: FilterChange;
}

const trimText = (text: string) => text.trim();
const normalizeTags = (text: string) => parseTags(text).join(", ");

/** Search, filters and sort of the task list; every change goes to the URL through `onChange`. */
export function TaskFiltersForm({ filters, onChange }: TaskFiltersFormProps) {
  const id = useId();
  const ids = {
    status: `${id}-status`,
    priority: `${id}-priority`,
    scope: `${id}-scope`,
    dueFrom: `${id}-due-from`,
    dueUntil: `${id}-due-until`,
    sort: `${id}-sort`,
  };

  // Typing replaces the history entry; picking from a list adds one, so Back undoes it.
  const commitSearch = useCallback((q: string) => onChange({ q }, { replace: true }), [onChange]);
  const commitTags = useCallback(
    (text: string) => onChange({ tags: parseTags(text) }, { replace: true }),
    [onChange],
  );
  const select =
    <K extends keyof TaskFilters>(key: K) =>
    (event: ChangeEvent<HTMLSelectElement | HTMLInputElement>) =>
      onChange({ [key]: event.target.value } as Pick<TaskFilters, K>);

  return (
    <form className="task-filters" role="search" onSubmit={(event) => event.preventDefault()}>
      <div className="task-filters-search">
        <DebouncedTextInput
          type="search"
          label="Search tasks"
          placeholder="Words in the title or description"
          value={filters.q}
          normalize={trimText}
          onCommit={commitSearch}
        />
      </div>
      <div className="field">
        <label htmlFor={ids.status}>Status filter</label>
        <select id={ids.status} value={filters.status} onChange={select("status")}>
          <option value="">Any status</option>
          {STATUSES.map((status: Status) => (
            <option key={status} value={status}>
              {STATUS_LABELS[status]}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={ids.priority}>Priority filter</label>
        <select id={ids.priority} value={filters.priority} onChange={select("priority")}>
          <option value="">Any priority</option>
          {PRIORITIES.map((priority: Priority) => (
            <option key={priority} value={priority}>
              {PRIORITY_LABELS[priority]}
            </option>
          ))}
        </select>
      </div>
      <div className="field">
        <label htmlFor={ids.scope}>Scope</label>
        <select id={ids.scope} value={filters.scope} onChange={select("scope")}>
          {SCOPES.map((scope: Scope) => (
            <option key={scope} value={scope}>
              {SCOPE_LABELS[scope]}
            </option>
          ))}
        </select>
      </div>
      <DebouncedTextInput
        label="Tag filter"
        hint="Separate tags with commas; a task must have them all."
        value={filters.tags.join(", ")}
        normalize={normalizeTags}
        onCommit={commitTags}
      />
      <div className="field">
        <label htmlFor={ids.dueFrom}>Due from</label>
        <input
          id={ids.dueFrom}
          type="date"
          value={filters.dueFrom}
          max={filters.dueUntil || undefined}
          onChange={select("dueFrom")}
        />
      </div>
      <div className="field">
        <label htmlFor={ids.dueUntil}>Due until</label>
        <input
          id={ids.dueUntil}
          type="date"
          value={filters.dueUntil}
          min={filters.dueFrom || undefined}
          onChange={select("dueUntil")}
        />
      </div>
      <div className="field">
        <label htmlFor={ids.sort}>Sort</label>
        <select id={ids.sort} value={filters.sort} onChange={select("sort")}>
          {SORT_ORDERS.map((sort: SortOrder) => (
            <option key={sort} value={sort}>
              {SORT_LABELS[sort]}
            </option>
          ))}
        </select>
      </div>
      {isFiltered(filters) && (
        <div className="task-filters-clear">
          <button
            type="button"
            className="btn btn-link"
            onClick={() => onChange({ ...DEFAULT_FILTERS, sort: filters.sort })}
          >
            Clear filters
          </button>
        </div>
      )}
    </form>
  );
}
