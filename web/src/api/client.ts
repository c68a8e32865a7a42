/**
 * The one typed client of the gateway's API.
 *
 * Every call carries the session's access token. A 401 that refuses the token (expired or
 * revoked) refreshes the session once (the session makes concurrent refreshes one) and the
 * call is retried once with the new token; a second 401 is the caller's to handle.
 */
import createClient, { type Client } from "openapi-fetch";

import { session } from "../session/SessionProvider";
import type { paths } from "./generated/schema";
import { ApiError, unwrap } from "./problem";
import type { Attachment } from "./types";

export { ApiError, isApiError, unwrap, type FetchResult } from "./problem";

/** Where the client gets its bearer token, and a new one when the server refuses it. */
export interface TokenSource {
  accessToken(): string | null;
  /** A new access token, or null when the session could not be refreshed. */
  refresh(): Promise<string | null>;
}

export type Fetch = (request: Request) => Promise<Response>;

const sendOverNetwork: Fetch = (request) => fetch(request);

export function createAuthenticatedFetch(tokens: TokenSource, send: Fetch = sendOverNetwork): Fetch {
  return async (request) => {
    // A body can be read only once: keep a copy for the retry before sending.
    const spare = request.clone();
    const token = tokens.accessToken();
    const response = await send(withBearer(request, token));
    if (response.status !== 401 || token === null || !refusesToken(response)) {
      return response;
    }
    const fresh = await replacementToken(tokens, token);
    if (fresh === null) {
      return response;
    }
    await response.body?.cancel();
    return send(withBearer(spare, fresh));
  };
}

/** A typed client that sends every call through `send` (the authenticated fetch in the app). */
export function createApiClient(send: Fetch): Client<paths> {
  return createClient<paths>({ baseUrl: window.location.origin, fetch: send });
}

const authenticatedFetch = createAuthenticatedFetch(session);

export const api: Client<paths> = createApiClient(authenticatedFetch);

/** Upload one file to a task (multipart field `file`); 413 when it is too large. */
export async function uploadAttachment(taskId: string, file: File): Promise<Attachment> {
  const form = new FormData();
  form.append("file", file, file.name);
  const url = `${window.location.origin}/api/v1/tasks/${encodeURIComponent(taskId)}/attachments`;
  const response = await authenticatedFetch(new Request(url, { method: "POST", body: form }));
  const body = await readJson(response);
  if (!response.ok) {
    throw new ApiError(response.status, body);
  }
  return body as Attachment;
}

/**
 * Save an attachment as a file. A plain link cannot carry the bearer token, so the bytes
 * are fetched here and handed to the browser through an object URL.
 */
export async function downloadAttachment(
  taskId: string,
  attachmentId: string,
  filename: string,
): Promise<void> {
  const blob = unwrap(
    await api.GET("/api/v1/tasks/{id}/attachments/{att_id}", {
      params: { path: { id: taskId, att_id: attachmentId } },
      parseAs: "blob",
    }),
  );
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // Some browsers read the object URL after click() returns: free it a little later.
  window.setTimeout(() => URL.revokeObjectURL(url), OBJECT_URL_LIFETIME_MS);
}

const OBJECT_URL_LIFETIME_MS = 10_000;

/**
 * Whether a 401 is about the token (RFC 6750 `error="invalid_token"`) rather than, say, a wrong
 * current password, which the gateway answers with a bare `Bearer` challenge.
 */
function refusesToken(response: Response): boolean {
  const challenge = response.headers.get("WWW-Authenticate");
  return challenge === null || challenge.includes("invalid_token");
}

async function replacementToken(tokens: TokenSource, refused: string): Promise<string | null> {
  // Another call may have refreshed the session while this one was in flight.
  const current = tokens.accessToken();
  if (current !== null && current !== refused) {
    return current;
  }
  return tokens.refresh();
}

function withBearer(request: Request, token: string | null): Request {
  if (token !== null) {
    request.headers.set("Authorization", `Bearer ${token}`);
  }
  return request;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text) {
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
