import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useLocation, useNavigate, useParams } from "react-router";

import { ApiError, api, unwrap } from "../../api/client";
import type { Task } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { formatDateTime } from "../../lib/time";
import { AssigneePicker } from "./AssigneePicker";
import { AttachmentList } from "./AttachmentList";
import { ConfirmButton } from "./ConfirmButton";
import { TaskForm, type Editable } from "./TaskForm";
import { STATUS_LABELS } from "./taskLabels";
import { taskDetailQuery, taskKeys } from "./taskQueries";
import { useTaskAccess, useTimeZone, type TaskAccess } from "./useTaskAccess";
import "./TasksPage.css";

/** The list's URL query the visitor came from, so "All tasks" returns to the same view. */
function useListSearch(): string {
  const state: unknown = useLocation().state;
  if (typeof state === "object" && state !== null && "listSearch" in state) {
    const search = state.listSearch;
    return typeof search === "string" && search.startsWith("?") ? search : "";
  }
  return "";
}

function editableFor(access: TaskAccess): Editable {
  if (access.canEdit) return "all";
  return access.canChangeStatus ? "status" : "none";
}

export function TaskDetailPage() {
  const { taskId = "" } = useParams();
  const listSearch = useListSearch();
  const task = useQuery(taskDetailQuery(taskId));
  const timeZone = useTimeZone();
  const accessTo = useTaskAccess();
  const backLink = (
    <p className="task-back">
      <Link to={`/tasks${listSearch}`}>← All tasks</Link>
    </p>
  );

  // A 404 also comes after the task is deleted, or when it stops being visible to the user.
  if (task.error instanceof ApiError && task.error.status === 404) {
    return (
      <div className="task-detail">
        {backLink}
        <h1>Task not found</h1>
        <p>This task does not exist, or it is no longer shared with you.</p>
      </div>
    );
  }
  if (task.data === undefined || timeZone === null) {
    return (
      <div className="task-detail">
        {backLink}
        {task.isError ? <ErrorMessage error={task.error} /> : <Loading label="Loading task" />}
      </div>
    );
  }

  const access = accessTo(task.data);
  return (
    // Keyed by task so moving to another task starts its forms afresh.
    <article key={task.data.id} className="task-detail" aria-labelledby="task-title">
      {backLink}
      <h1 id="task-title">{task.data.title}</h1>
      <TaskSummary task={task.data} timeZone={timeZone} />
      {task.isError && <ErrorMessage error={task.error} />}

      <section className="task-section" aria-labelledby="task-details-heading">
        <h2 id="task-details-heading">Details</h2>
        <TaskForm key={timeZone} task={task.data} timeZone={timeZone} editable={editableFor(access)} />
      </section>

      <section className="task-section" aria-labelledby="task-assignee-heading">
        <h2 id="task-assignee-heading">Assignee</h2>
        <AssigneePicker task={task.data} canEdit={access.canEdit} />
      </section>

      <section className="task-section" aria-labelledby="task-attachments-heading">
        <h2 id="task-attachments-heading">Attachments</h2>
        <AttachmentList taskId={task.data.id} canManage={access.canEdit} timeZone={timeZone} />
      </section>

      {access.canEdit && (
        <section className="task-section" aria-labelledby="task-delete-heading">
          <h2 id="task-delete-heading">Delete</h2>
          <DeleteTask taskId={task.data.id} listSearch={listSearch} />
        </section>
      )}
    </article>
  );
}

function TaskSummary({ task, timeZone }: { task: Task; timeZone: string }) {
  return (
    <p className="task-summary">
      <span className={`badge status-${task.status}`}>{STATUS_LABELS[task.status]}</span>{" "}
      Created <time dateTime={task.created_at}>{formatDateTime(task.created_at, timeZone)}</time>,
      updated <time dateTime={task.updated_at}>{formatDateTime(task.updated_at, timeZone)}</time>
      {task.completed_at !== null && (
        <>
          , completed{" "}
          <time dateTime={task.completed_at}>{formatDateTime(task.completed_at, timeZone)}</time>
        </>
      )}
      .
    </p>
  );
}

function DeleteTask({ taskId, listSearch }: { taskId: string; listSearch: string }) {
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const remove = useMutation({
    mutationFn: async () =>
      unwrap(await api.DELETE("/api/v1/tasks/{id}", { params: { path: { id: taskId } } })),
    onSuccess: async () => {
      await navigate(`/tasks${listSearch}`);
      queryClient.removeQueries({ queryKey: taskKeys.detail(taskId), exact: true });
      queryClient.removeQueries({ queryKey: taskKeys.attachments(taskId), exact: true });
      await queryClient.invalidateQueries({ queryKey: taskKeys.lists });
    },
  });
  return (
    <div className="task-delete">
      <ConfirmButton
        label="Delete task"
        question="Delete this task and its attachments? This cannot be undone."
        confirmLabel="Yes, delete task"
        pending={remove.isPending}
        onConfirm={() => remove.mutate()}
      />
      {remove.error !== null && <ErrorMessage error={remove.error} />}
    </div>
  );
}
