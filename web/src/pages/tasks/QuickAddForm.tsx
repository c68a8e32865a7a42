import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { ApiError, api, unwrap } from "../../api/client";
import type { Task } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { newIdempotencyKey } from "./idempotency";
import { taskKeys } from "./taskQueries";

async function createTask(title: string): Promise<Task> {
  const result = await api.POST("/api/v1/tasks", {
    body: { title, description: "", status: "todo", priority: "medium" },
    headers: { "Idempotency-Key": newIdempotencyKey() },
  });
  return unwrap(result);
}

/** A title field and "Add task": the quickest way to a new task. */
export function QuickAddForm() {
  const queryClient = useQueryClient();
  const [title, setTitle] = useState("");
  const [titleError, setTitleError] = useState<string | undefined>();
  const [added, setAdded] = useState("");

  const create = useMutation({
    mutationFn: createTask,
    onSuccess: async (task) => {
      setTitle("");
      setAdded(`Added “${task.title}”.`);
      queryClient.setQueryData(taskKeys.detail(task.id), task);
      await queryClient.invalidateQueries({ queryKey: taskKeys.lists });
    },
    onError: (error) => {
      if (error instanceof ApiError && error.status === 422) {
        setTitleError(error.fieldErrors().title ?? error.message);
      }
    },
  });

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const trimmed = title.trim();
    setAdded("");
    if (trimmed === "") {
      setTitleError("Enter a title.");
      return;
    }
    setTitleError(undefined);
    create.mutate(trimmed);
  }

  const otherError =
    create.error !== null && !(create.error instanceof ApiError && create.error.status === 422)
      ? create.error
      : null;

  return (
    <form className="quick-add" onSubmit={submit} noValidate aria-label="Add a task">
      <div className="quick-add-field">
        <TextField
          label="New task title"
          name="title"
          value={title}
          maxLength={200}
          autoComplete="off"
          error={titleError}
          onChange={(event) => setTitle(event.target.value)}
        />
      </div>
      <button type="submit" className="btn btn-primary" disabled={create.isPending}>
        Add task
      </button>
      {otherError !== null && <ErrorMessage error={otherError} />}
      <p role="status" className="quick-add-status">
        {added}
      </p>
    </form>
  );
}
