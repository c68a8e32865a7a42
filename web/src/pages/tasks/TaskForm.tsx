import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState, type FormEvent } from "react";

import { ApiError } from "../../api/client";
import type { Task, TaskPatch } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { formatDateTime } from "../../lib/time";
import { Field } from "./Field";
import {
  changesBetween,
  draftOf,
  isEmptyPatch,
  sameEditedFields,
  type EditableFields,
  type TaskDraft,
} from "./taskDraft";
import { PRIORITIES, PRIORITY_LABELS, STATUSES, STATUS_LABELS, isOneOf } from "./taskLabels";
import { patchTask, rememberTask, taskDetailQuery } from "./taskQueries";

/** What the signed-in user may change: everything (owner, admin), the status (assignee), nothing. */
export type Editable = EditableFields;

interface TaskFormProps {
  /** The task as the cache holds it now; live updates may move it past the draft's version. */
  task: Task;
  timeZone: string;
  editable: Editable;
}

/** The API's names of the fields this form shows, for matching 422 field errors. */
const FORM_FIELDS = ["title", "description", "status", "priority", "due_at", "tags"];

function isConflict(error: unknown): boolean {
  return error instanceof ApiError && error.status === 412;
}

/**
 * The task's edit form. Saves only the changed fields, on condition that the server still
 * has the version the draft started from; a 412 shows the conflict with a way to reload.
 */
export function TaskForm({ task, timeZone, editable }: TaskFormProps) {
  const queryClient = useQueryClient();
  // `base` is the version the draft started from: the If-Match of the save.
  const [base, setBase] = useState(task);
  const [draft, setDraft] = useState(() => draftOf(task, timeZone));
  const [fieldErrors, setFieldErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState("");
  const formRef = useRef<HTMLFormElement>(null);

  // After a refused save, take the user to the first field to correct.
  useEffect(() => {
    formRef.current?.querySelector<HTMLElement>("[aria-invalid='true']")?.focus();
  }, [fieldErrors]);

  const changes = changesBetween(base, draft, timeZone, editable);
  const dirty = !isEmptyPatch(changes);

  function startFrom(fresh: Task) {
    setBase(fresh);
    setDraft(draftOf(fresh, timeZone));
    setFieldErrors({});
  }

  const save = useMutation({
    mutationFn: (patch: TaskPatch) => patchTask(base, patch),
    onSuccess: async (saved) => {
      startFrom(saved);
      setMessage("Changes saved.");
      await rememberTask(queryClient, saved);
    },
    onError: (error) => {
      setFieldErrors(error instanceof ApiError && error.status === 422 ? error.fieldErrors() : {});
    },
  });

  const reload = useMutation({
    mutationFn: () => queryClient.fetchQuery({ ...taskDetailQuery(task.id), staleTime: 0 }),
    onSuccess: (fresh) => {
      startFrom(fresh);
      save.reset();
      setMessage("Reloaded the latest version.");
    },
  });

  const conflict = isConflict(save.error);
  // A newer version (a live update, or this page's own assignment) that left the editable
  // fields alone becomes the base at once: nothing to reconcile, and read-only fields show
  // it. One that changed them is never merged into the form silently, not even an untouched
  // one (values would change under the user's eyes): the page says so and offers to reload;
  // saving meanwhile meets the server's 412.
  const newer = task.version > base.version && !save.isPending;
  if (newer && sameEditedFields(task, base, editable)) {
    setBase(task);
  }
  const stale = newer && !sameEditedFields(task, base, editable);

  function change<K extends keyof TaskDraft>(key: K, value: TaskDraft[K]) {
    setDraft((current) => ({ ...current, [key]: value }));
    setMessage("");
  }

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (draft.title.trim() === "") {
      setFieldErrors({ title: "Enter a title." });
      return;
    }
    if (!dirty) {
      setMessage("There are no changes to save.");
      return;
    }
    setMessage("");
    save.mutate(changes);
  }

  const unshownFieldError = Object.keys(fieldErrors).some((name) => !FORM_FIELDS.includes(name));
  const showGeneralError =
    save.error !== null &&
    !conflict &&
    (!(save.error instanceof ApiError && save.error.status === 422) || unshownFieldError);

  return (
    <form ref={formRef} className="task-form" onSubmit={submit} noValidate aria-label="Edit task">
      {editable === "all" ? (
        <>
          <TextField
            label="Title"
            name="title"
            required
            maxLength={200}
            value={draft.title}
            error={fieldErrors.title}
            onChange={(event) => change("title", event.target.value)}
          />
          <Field label="Description" error={fieldErrors.description}>
            {(control) => (
              <textarea
                {...control}
                name="description"
                rows={6}
                maxLength={10_000}
                value={draft.description}
                onChange={(event) => change("description", event.target.value)}
              />
            )}
          </Field>
        </>
      ) : (
        <ReadOnlyFields task={base} timeZone={timeZone} showStatus={editable === "none"} />
      )}

      <div className="task-form-row">
        {editable === "none" ? null : (
          <Field label="Status" error={fieldErrors.status}>
            {(control) => (
              <select
                {...control}
                name="status"
                value={draft.status}
                onChange={(event) => {
                  if (isOneOf(STATUSES, event.target.value)) change("status", event.target.value);
                }}
              >
                {STATUSES.map((status) => (
                  <option key={status} value={status}>
                    {STATUS_LABELS[status]}
                  </option>
                ))}
              </select>
            )}
          </Field>
        )}
        {editable === "all" && (
          <>
            <Field label="Priority" error={fieldErrors.priority}>
              {(control) => (
                <select
                  {...control}
                  name="priority"
                  value={draft.priority}
                  onChange={(event) => {
                    if (isOneOf(PRIORITIES, event.target.value)) {
                      change("priority", event.target.value);
                    }
                  }}
                >
                  {PRIORITIES.map((priority) => (
                    <option key={priority} value={priority}>
                      {PRIORITY_LABELS[priority]}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field label="Due date" hint={`In your time zone, ${timeZone}.`} error={fieldErrors.due_at}>
              {(control) => (
                <input
                  {...control}
                  name="due"
                  type="datetime-local"
                  value={draft.due}
                  onChange={(event) => change("due", event.target.value)}
                />
              )}
            </Field>
          </>
        )}
      </div>

      {editable === "all" && (
        <Field label="Tags" hint="Separate tags with commas." error={fieldErrors.tags}>
          {(control) => (
            <input
              {...control}
              name="tags"
              type="text"
              autoComplete="off"
              value={draft.tags}
              onChange={(event) => change("tags", event.target.value)}
            />
          )}
        </Field>
      )}

      {/* Beside "Save changes": where the user looks when a save is refused. */}
      {(conflict || stale) && (
        <div role={conflict ? "alert" : "status"} className="task-conflict">
          <p>
            This task was changed elsewhere.{" "}
            {conflict ? "Your changes were not saved. " : ""}Reload it to see the latest
            version; unsaved changes here will be replaced.
          </p>
          <button
            type="button"
            className="btn btn-primary"
            disabled={reload.isPending}
            onClick={() => reload.mutate()}
          >
            Reload task
          </button>
          {reload.error !== null && <ErrorMessage error={reload.error} />}
        </div>
      )}

      {editable !== "none" && (
        <div className="task-form-actions">
          <button type="submit" className="btn btn-primary" disabled={save.isPending}>
            Save changes
          </button>
          <p role="status" className="task-form-message">
            {message}
          </p>
        </div>
      )}
      {showGeneralError && <ErrorMessage error={save.error} />}
    </form>
  );
}

/** The fields someone who may not edit them sees: as text. */
function ReadOnlyFields({
  task,
  timeZone,
  showStatus,
}: {
  task: Task;
  timeZone: string;
  showStatus: boolean;
}) {
  return (
    <dl className="task-readonly">
      {showStatus && (
        <div>
          <dt>Status</dt>
          <dd>{STATUS_LABELS[task.status]}</dd>
        </div>
      )}
      <div>
        <dt>Description</dt>
        <dd className="task-description">{task.description === "" ? "None" : task.description}</dd>
      </div>
      <div>
        <dt>Priority</dt>
        <dd>{PRIORITY_LABELS[task.priority]}</dd>
      </div>
      <div>
        <dt>Due date</dt>
        <dd>
          {task.due_at === null ? (
            "None"
          ) : (
            <time dateTime={task.due_at}>{formatDateTime(task.due_at, timeZone)}</time>
          )}
        </dd>
      </div>
      <div>
        <dt>Tags</dt>
        <dd>{task.tags.length === 0 ? "None" : task.tags.join(", ")}</dd>
      </div>
    </dl>
  );
}
