import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId } from "react";
import { Link, useLocation } from "react-router";

import { ApiError } from "../../api/client";
import type { Status, Task } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { dueLabel, formatDate, formatDateTime, type DueLabel } from "../../lib/time";
import { PRIORITY_LABELS, STATUSES, STATUS_LABELS, isOneOf } from "./taskLabels";
import { patchTask, rememberTask, taskKeys } from "./taskQueries";
import type { TaskAccess } from "./useTaskAccess";

interface TaskRowProps {
  task: Task;
  access: TaskAccess;
  /** The user's zone; null while it loads (due dates wait for it). */
  timeZone: string | null;
  now: Date;
}

/** A done task is no longer overdue, nor due soon: it just had a due date. */
function doneOrDueLabel(task: Task, dueAt: string, now: Date, timeZone: string): DueLabel {
  if (task.status === "done") {
    return { text: `Was due ${formatDate(dueAt, timeZone)}`, tone: "later" };
  }
  return dueLabel(dueAt, now, timeZone);
}

/** One task of the list: its title links to the task; its status changes in place. */
export function TaskRow({ task, access, timeZone, now }: TaskRowProps) {
  const id = useId();
  const location = useLocation();
  const queryClient = useQueryClient();

  const changeStatus = useMutation({
    mutationFn: (status: Status) => patchTask(task, { status }),
    onSuccess: (saved) => rememberTask(queryClient, saved),
    onError: (error) => {
      if (error instanceof ApiError && error.status === 412) {
        return queryClient.invalidateQueries({ queryKey: taskKeys.lists });
      }
      return undefined;
    },
  });
  const shownStatus = changeStatus.isPending ? changeStatus.variables : task.status;
  const due =
    task.due_at !== null && timeZone !== null
      ? {
          at: task.due_at,
          full: formatDateTime(task.due_at, timeZone),
          ...doneOrDueLabel(task, task.due_at, now, timeZone),
        }
      : null;

  return (
    <li className="task-row" aria-busy={changeStatus.isPending}>
      <div className="task-row-main">
        <Link
          className="task-row-title"
          to={`/tasks/${task.id}`}
          state={{ listSearch: location.search }}
        >
          {task.title}
        </Link>
        <p className="task-row-meta">
          <span className={`badge priority-${task.priority}`}>
            {PRIORITY_LABELS[task.priority]}
            <span className="visually-hidden"> priority</span>
          </span>
          {due !== null && (
            <time
              className={`task-due task-due-${due.tone}`}
              dateTime={due.at}
              title={due.full}
            >
              {due.text}
            </time>
          )}
          {access.isAssignee && !access.canEdit && <span>Assigned to you</span>}
          {task.tags.map((tag) => (
            <span key={tag} className="badge task-tag">
              #{tag}
            </span>
          ))}
        </p>
      </div>
      <div className="task-row-status">
        {access.canChangeStatus ? (
          <>
            <label className="visually-hidden" htmlFor={`${id}-status`}>
              Status of {task.title}
            </label>
            <select
              id={`${id}-status`}
              value={shownStatus}
              disabled={changeStatus.isPending}
              onChange={(event) => {
                if (isOneOf(STATUSES, event.target.value)) {
                  changeStatus.mutate(event.target.value);
                }
              }}
            >
              {STATUSES.map((status) => (
                <option key={status} value={status}>
                  {STATUS_LABELS[status]}
                </option>
              ))}
            </select>
          </>
        ) : (
          <span className={`badge status-${task.status}`}>{STATUS_LABELS[task.status]}</span>
        )}
      </div>
      {changeStatus.error !== null &&
        (changeStatus.error instanceof ApiError && changeStatus.error.status === 412 ? (
          <p role="alert" className="task-row-error">
            “{task.title}” was changed elsewhere; the list now shows its latest version. Try
            again.
          </p>
        ) : (
          <div className="task-row-error">
            <ErrorMessage error={changeStatus.error} />
          </div>
        ))}
    </li>
  );
}
