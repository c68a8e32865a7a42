import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useState, type ChangeEvent } from "react";

import { ApiError, api, downloadAttachment, unwrap, uploadAttachment } from "../../api/client";
import type { Attachment } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { formatDateTime } from "../../lib/time";
import { ConfirmButton } from "./ConfirmButton";
import { attachmentsQuery, taskKeys } from "./taskQueries";

interface AttachmentListProps {
  taskId: string;
  /** Owner or admin: may upload and delete. Everyone who sees the task may download. */
  canManage: boolean;
  timeZone: string;
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) {
    return `${bytes} ${bytes === 1 ? "byte" : "bytes"}`;
  }
  const units = ["KiB", "MiB", "GiB"];
  let size = bytes / 1024;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toLocaleString(undefined, { maximumFractionDigits: 1 })} ${units[unit]}`;
}

export function AttachmentList({ taskId, canManage, timeZone }: AttachmentListProps) {
  const queryClient = useQueryClient();
  const inputId = useId();
  const [uploaded, setUploaded] = useState("");
  const attachments = useQuery(attachmentsQuery(taskId));
  const refresh = () => queryClient.invalidateQueries({ queryKey: taskKeys.attachments(taskId) });

  const upload = useMutation({
    mutationFn: (file: File) => uploadAttachment(taskId, file),
    onSuccess: async (attachment) => {
      setUploaded(`Uploaded ${attachment.filename}.`);
      await refresh();
    },
  });

  function chooseFile(event: ChangeEvent<HTMLInputElement>) {
    const file = event.target.files?.[0];
    // Cleared at once so choosing the same file again uploads it again.
    event.target.value = "";
    if (file !== undefined) {
      setUploaded("");
      upload.mutate(file);
    }
  }

  return (
    <div className="attachments">
      {attachments.data === undefined ? (
        attachments.isError ? (
          <ErrorMessage error={attachments.error} />
        ) : (
          <Loading label="Loading attachments" />
        )
      ) : attachments.data.length === 0 ? (
        <p>No attachments.</p>
      ) : (
        <ul aria-label="Attachments" className="attachment-list">
          {attachments.data.map((attachment) => (
            <AttachmentItem
              key={attachment.id}
              taskId={taskId}
              attachment={attachment}
              canManage={canManage}
              timeZone={timeZone}
              onDeleted={refresh}
            />
          ))}
        </ul>
      )}

      {canManage && (
        <div className="attachment-upload">
          <label htmlFor={inputId}>Attach a file</label>
          <input
            id={inputId}
            type="file"
            disabled={upload.isPending}
            aria-describedby={`${inputId}-status`}
            onChange={chooseFile}
          />
          <p id={`${inputId}-status`} role="status" className="attachment-status">
            {upload.isPending ? `Uploading ${upload.variables.name}…` : uploaded}
          </p>
          {upload.error !== null &&
            (upload.error instanceof ApiError && upload.error.status === 413 ? (
              <p role="alert" className="field-error">
                File is larger than the limit
                {upload.variables === undefined ? "" : `: ${upload.variables.name} was not attached`}.
              </p>
            ) : (
              <ErrorMessage error={upload.error} />
            ))}
        </div>
      )}
    </div>
  );
}

interface AttachmentItemProps {
  taskId: string;
  attachment: Attachment;
  canManage: boolean;
  timeZone: string;
  onDeleted: () => Promise<void>;
}

function AttachmentItem({ taskId, attachment, canManage, timeZone, onDeleted }: AttachmentItemProps) {
  const download = useMutation({
    mutationFn: () => downloadAttachment(taskId, attachment.id, attachment.filename),
  });
  const remove = useMutation({
    mutationFn: async () =>
      unwrap(
        await api.DELETE("/api/v1/tasks/{id}/attachments/{att_id}", {
          params: { path: { id: taskId, att_id: attachment.id } },
        }),
      ),
    onSuccess: onDeleted,
  });
  const error = download.error ?? remove.error;

  return (
    <li className="attachment">
      <div className="attachment-info">
        <span className="attachment-name">{attachment.filename}</span>
        <span className="attachment-meta">
          {formatSize(attachment.size)} ·{" "}
          <time dateTime={attachment.created_at}>
            {formatDateTime(attachment.created_at, timeZone)}
          </time>
        </span>
      </div>
      <div className="attachment-actions">
        <button
          type="button"
          className="btn"
          disabled={download.isPending}
          onClick={() => download.mutate()}
        >
          Download<span className="visually-hidden"> {attachment.filename}</span>
        </button>
        {canManage && (
          <ConfirmButton
            label={
              <>
                Delete<span className="visually-hidden"> {attachment.filename}</span>
              </>
            }
            question={`Delete ${attachment.filename}? This cannot be undone.`}
            confirmLabel="Yes, delete it"
            pending={remove.isPending}
            onConfirm={() => remove.mutate()}
          />
        )}
      </div>
      {error !== null && <ErrorMessage error={error} />}
    </li>
  );
}
