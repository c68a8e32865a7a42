/**
 * Errors answered by the API: RFC 9457 problem documents, wrapped in `ApiError`.
 *
 * Kept apart from `client.ts` so the session can throw them without importing the
 * authenticated client (which itself depends on the session).
 */
import type { Problem } from "./types";

/** Where a validation issue's `loc` starts before it names a field. */
const LOCATIONS = new Set(["body", "query", "path", "header", "cookie"]);

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;

  constructor(status: number, body: unknown) {
    const problem = asProblem(body);
    super(problem?.detail || problem?.title || `The server answered ${status}.`);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }

  /** The first message for each field a 422 names, keyed by field name (e.g. `title`). */
  fieldErrors(): Record<string, string> {
    const messages: Record<string, string> = {};
    for (const issue of this.problem?.errors ?? []) {
      const field = fieldName(issue.loc);
      if (field !== null && !(field in messages)) {
        messages[field] = issue.msg;
      }
    }
    return messages;
  }
}

export function isApiError(error: unknown, status?: number): error is ApiError {
  return error instanceof ApiError && (status === undefined || error.status === status);
}

/** The outcome of an openapi-fetch call, whatever the operation. */
export interface FetchResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/**
 * The data of a successful call; throws `ApiError` otherwise.
 * A 204 (or any empty success) has no data: it returns `undefined` typed as `T`.
 */
export function unwrap<T>(result: FetchResult<T>): T {
  if (!result.response.ok) {
    throw new ApiError(result.response.status, result.error);
  }
  return result.data as T;
}

function asProblem(body: unknown): Problem | null {
  if (typeof body !== "object" || body === null) {
    return null;
  }
  const candidate = body as Partial<Problem>;
  if (typeof candidate.status !== "number" || typeof candidate.title !== "string") {
    return null;
  }
  return { type: "about:blank", ...candidate } as Problem;
}

function fieldName(loc: (string | number)[]): string | null {
  const [first, ...rest] = loc;
  const path = typeof first === "string" && LOCATIONS.has(first) ? rest : loc;
  const field = path[0];
  return typeof field === "string" ? field : null;
}
