import { ApiError } from "../api/problem";

export interface ErrorMessageProps {
  /** Anything thrown or returned as an error; nothing renders for null or undefined. */
  error: unknown;
  /** Offers a "Try again" button when given. */
  onRetry?: () => void;
}

export function ErrorMessage({ error, onRetry }: ErrorMessageProps) {
  if (error === null || error === undefined) {
    return null;
  }
  const requestId = error instanceof ApiError ? error.problem?.request_id : null;
  return (
    <div className="error-message" role="alert">
      <p>{describeError(error)}</p>
      {requestId ? <p className="error-reference">Reference: {requestId}</p> : null}
      {onRetry ? (
        <button type="button" className="btn" onClick={onRetry}>
          Try again
        </button>
      ) : null}
    </div>
  );
}

/** A sentence for the user about what went wrong. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) {
    if (error.problem?.detail) {
      return error.problem.detail;
    }
    return STATUS_MESSAGES[error.status] ?? error.problem?.title ?? GENERIC_MESSAGE;
  }
  if (error instanceof TypeError) {
    // What fetch throws when the request never got an answer.
    return "Could not reach the server. Check your connection and try again.";
  }
  return GENERIC_MESSAGE;
}

const GENERIC_MESSAGE = "Something went wrong. Please try again.";

const STATUS_MESSAGES: Record<number, string> = {
  401: "Your session has ended. Please log in again.",
  403: "You are not allowed to do that.",
  404: "This was not found. It may have been deleted.",
  413: "That file is too large.",
  429: "Too many requests. Please wait a moment and try again.",
  502: "The service is unavailable right now. Please try again shortly.",
  503: "The service is unavailable right now. Please try again shortly.",
  504: "The service took too long to answer. Please try again.",
};
