import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type FormEvent } from "react";

import { ApiError, api, unwrap } from "../../api/client";
import type { Task, UserSummary } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { useSession } from "../../session/SessionProvider";
import {
  lookupUser,
  patchTask,
  profileQuery,
  rememberTask,
  taskKeys,
  userSummaryKey,
} from "./taskQueries";

interface AssigneePickerProps {
  task: Task;
  /** Owner or admin: may assign and unassign. */
  canEdit: boolean;
}

/** The lookup found nobody: no active user has that exact email. */
class NoSuchUser extends Error {}

function isStatus(error: unknown, status: number): error is ApiError {
  return error instanceof ApiError && error.status === status;
}

/**
 * The name of the user `userId`. The API names users only to admins (GET /users/{id}) and
 * through the exact-email lookup, so for anyone else a name is known once this tab has
 * looked the user up (or when it is the signed-in user).
 */
function useUserName(userId: string | null): string | null {
  const { user } = useSession();
  const isMe = userId !== null && userId === user?.id;
  const profile = useQuery({ ...profileQuery(), enabled: isMe });
  const summary = useQuery({
    queryKey: userSummaryKey(userId ?? ""),
    queryFn: async (): Promise<UserSummary> => {
      const found = unwrap(
        await api.GET("/api/v1/users/{id}", { params: { path: { id: userId ?? "" } } }),
      );
      return { id: found.id, name: found.name };
    },
    enabled: userId !== null && !isMe && user?.role === "admin",
    staleTime: Infinity,
  });
  if (isMe) {
    return profile.data === undefined ? null : `${profile.data.name} (you)`;
  }
  return summary.data?.name ?? null;
}

/** Who the task is assigned to; the owner (or an admin) assigns by exact email, or unassigns. */
export function AssigneePicker({ task, canEdit }: AssigneePickerProps) {
  const queryClient = useQueryClient();
  const [email, setEmail] = useState("");
  const [emailError, setEmailError] = useState<string | undefined>();
  const assigneeName = useUserName(task.assignee_id);

  async function reloadAfterConflict() {
    await queryClient.invalidateQueries({ queryKey: taskKeys.detail(task.id) });
  }

  const assign = useMutation({
    mutationFn: async (address: string): Promise<Task> => {
      let found: UserSummary;
      try {
        found = await lookupUser(address);
      } catch (error) {
        throw isStatus(error, 404) ? new NoSuchUser() : error;
      }
      queryClient.setQueryData(userSummaryKey(found.id), found);
      return patchTask(task, { assignee_id: found.id });
    },
    onSuccess: async (saved) => {
      setEmail("");
      await rememberTask(queryClient, saved);
    },
    onError: async (error) => {
      if (error instanceof NoSuchUser) {
        setEmailError("No active user with that email");
      } else if (isStatus(error, 422)) {
        const errors = error.fieldErrors();
        setEmailError(errors.email ?? errors.assignee_id ?? error.message);
      } else if (isStatus(error, 412)) {
        await reloadAfterConflict();
      }
    },
  });

  const unassign = useMutation({
    mutationFn: () => patchTask(task, { assignee_id: null }),
    onSuccess: (saved) => rememberTask(queryClient, saved),
    onError: async (error) => {
      if (isStatus(error, 412)) {
        await reloadAfterConflict();
      }
    },
  });

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const address = email.trim();
    if (address === "") {
      setEmailError("Enter the email address of the person to assign.");
      return;
    }
    setEmailError(undefined);
    unassign.reset();
    assign.mutate(address);
  }

  const failure = [assign.error, unassign.error].find(
    (error) => error !== null && !(error instanceof NoSuchUser) && !isStatus(error, 422),
  );
  const pending = assign.isPending || unassign.isPending;

  return (
    <div className="assignee">
      <p className="assignee-current" aria-live="polite">
        {task.assignee_id === null
          ? "Not assigned."
          : assigneeName === null
            ? "Assigned to another user."
            : `Assigned to ${assigneeName}`}
      </p>
      {canEdit && (
        <>
          <form className="assignee-form" onSubmit={submit} noValidate aria-label="Assign the task">
            <div className="assignee-email">
              <TextField
                label="Assignee email"
                name="assignee-email"
                type="email"
                autoComplete="off"
                value={email}
                error={emailError}
                onChange={(event) => {
                  setEmail(event.target.value);
                  setEmailError(undefined);
                }}
              />
            </div>
            <button type="submit" className="btn" disabled={pending}>
              Assign
            </button>
            {task.assignee_id !== null && (
              <button
                type="button"
                className="btn"
                disabled={pending}
                onClick={() => {
                  assign.reset();
                  unassign.mutate();
                }}
              >
                Unassign
              </button>
            )}
          </form>
          {failure !== undefined &&
            (isStatus(failure, 412) ? (
              <p role="alert">
                Someone changed the task meanwhile; it now shows the latest version. Try again.
              </p>
            ) : (
              <ErrorMessage error={failure} />
            ))}
        </>
      )}
    </div>
  );
}
