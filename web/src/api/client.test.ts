import { describe, expect, it, vi } from "vitest";

import { ApiError, createApiClient, createAuthenticatedFetch, unwrap, type Fetch, type TokenSource } from "./client";

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

const unauthorized = () =>
  json({ type: "about:blank", title: "Unauthorized", status: 401, detail: "The token has expired." }, 401, {
    "Content-Type": "application/problem+json",
    "WWW-Authenticate": 'Bearer error="invalid_token", error_description="the token has expired"',
  });

/** A token source whose token is `token` until `refresh` hands out `next`. */
function tokens(token: string | null, next: string | null = "fresh-token") {
  let current = token;
  const source = {
    accessToken: vi.fn(() => current),
    refresh: vi.fn(async () => {
      current = next;
      return next;
    }),
  } satisfies TokenSource;
  return source;
}

/** A fake network answering `responses` in order and recording what it was sent. */
function network(...responses: Response[]) {
  const sent: { authorization: string | null; method: string; url: string; body: string }[] = [];
  const send = vi.fn<Fetch>(async (request) => {
    sent.push({
      authorization: request.headers.get("Authorization"),
      method: request.method,
      url: request.url,
      body: await request.text(),
    });
    const response = responses.shift();
    if (response === undefined) {
      throw new Error(`unexpected request ${request.method} ${request.url}`);
    }
    return response;
  });
  return { send, sent };
}

describe("the authenticated client", () => {
  it("sends the session's access token as a bearer token", async () => {
    const { send, sent } = network(json({ items: [], next_cursor: null }));
    const api = createApiClient(createAuthenticatedFetch(tokens("token-1"), send));

    const { data } = await api.GET("/api/v1/tasks", { params: { query: { limit: 5 } } });

    expect(data).toEqual({ items: [], next_cursor: null });
    expect(sent).toHaveLength(1);
    expect(sent[0]?.authorization).toBe("Bearer token-1");
    expect(sent[0]?.url).toMatch(/\/api\/v1\/tasks\?limit=5$/);
  });

  it("sends no Authorization header and does not refresh without a session", async () => {
    const source = tokens(null);
    const { send, sent } = network(unauthorized());
    const api = createApiClient(createAuthenticatedFetch(source, send));

    const { response } = await api.GET("/api/v1/auth/me");

    expect(response.status).toBe(401);
    expect(sent[0]?.authorization).toBeNull();
    expect(source.refresh).not.toHaveBeenCalled();
  });

  it("refreshes once on a 401 and retries the call once, body included", async () => {
    const source = tokens("expired-token");
    const created = { id: "t1", title: "Write the report" };
    const { send, sent } = network(unauthorized(), json(created, 201));
    const api = createApiClient(createAuthenticatedFetch(source, send));

    const result = await api.POST("/api/v1/tasks", {
      body: { title: "Write the report", description: "", priority: "high", status: "todo" },
    });

    expect(result.response.status).toBe(201);
    expect(result.data).toEqual(created);
    expect(source.refresh).toHaveBeenCalledTimes(1);
    expect(sent.map((request) => request.authorization)).toEqual(["Bearer expired-token", "Bearer fresh-token"]);
    expect(sent[1]?.method).toBe("POST");
    expect(JSON.parse(sent[1]?.body ?? "")).toMatchObject({ title: "Write the report" });
  });

  it("gives back the retried call's 401 without refreshing again", async () => {
    const source = tokens("expired-token");
    const { send } = network(unauthorized(), unauthorized());
    const api = createApiClient(createAuthenticatedFetch(source, send));

    const { response, error } = await api.GET("/api/v1/auth/me");

    expect(response.status).toBe(401);
    expect(error).toMatchObject({ detail: "The token has expired." });
    expect(send).toHaveBeenCalledTimes(2);
    expect(source.refresh).toHaveBeenCalledTimes(1);
  });

  it("gives back the 401 when the session cannot be refreshed", async () => {
    const source = tokens("revoked-token", null);
    const { send } = network(unauthorized());
    const api = createApiClient(createAuthenticatedFetch(source, send));

    const { response } = await api.GET("/api/v1/auth/me");

    expect(response.status).toBe(401);
    expect(send).toHaveBeenCalledTimes(1);
    expect(source.refresh).toHaveBeenCalledTimes(1);
  });

  it("does not refresh on a 401 that is not about the token", async () => {
    const source = tokens("valid-token");
    const wrongPassword = json({ title: "Unauthorized", status: 401, detail: "Wrong password." }, 401, {
      "WWW-Authenticate": "Bearer",
    });
    const { send } = network(wrongPassword);
    const api = createApiClient(createAuthenticatedFetch(source, send));

    const { response } = await api.POST("/api/v1/auth/change-password", {
      body: { current_password: "wrong", new_password: "a new secret" },
    });

    expect(response.status).toBe(401);
    expect(send).toHaveBeenCalledTimes(1);
    expect(source.refresh).not.toHaveBeenCalled();
  });

  it("retries with a token refreshed meanwhile instead of refreshing again", async () => {
    const source = tokens("old-token");
    const { send, sent } = network(json({ id: "u1" }));
    send.mockImplementationOnce(async (request) => {
      const authorization = request.headers.get("Authorization");
      sent.push({ authorization, method: request.method, url: request.url, body: "" });
      await source.refresh(); // another call's refresh finishes while this one is in flight
      return unauthorized();
    });
    const fetchWithAuth = createAuthenticatedFetch(source, send);

    const response = await fetchWithAuth(new Request("http://localhost/api/v1/auth/me"));

    expect(response.status).toBe(200);
    expect(source.refresh).toHaveBeenCalledTimes(1);
    expect(sent.map((request) => request.authorization)).toEqual(["Bearer old-token", "Bearer fresh-token"]);
  });
});

describe("API errors", () => {
  it("reads an RFC 9457 problem, its message and its field errors", async () => {
    const problem = {
      type: "about:blank",
      title: "Unprocessable Content",
      status: 422,
      detail: "The request is invalid.",
      instance: "/api/v1/tasks",
      request_id: "req-42",
      errors: [
        { loc: ["body", "title"], msg: "String should have at least 1 character" },
        { loc: ["body", "tags", 3], msg: "must be 1-32 characters" },
        { loc: ["body", "tags", 4], msg: "a later message for the same field" },
        { loc: ["query", "limit"], msg: "must be at most 100" },
        { loc: [], msg: "no field named" },
      ],
    };
    const { send } = network(json(problem, 422, { "Content-Type": "application/problem+json" }));
    const api = createApiClient(createAuthenticatedFetch(tokens("token"), send));

    const error = await api
      .POST("/api/v1/tasks", { body: { title: "", description: "", priority: "low", status: "todo" } })
      .then(unwrap)
      .catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(ApiError);
    const apiError = error as ApiError;
    expect(apiError.status).toBe(422);
    expect(apiError.message).toBe("The request is invalid.");
    expect(apiError.problem?.request_id).toBe("req-42");
    expect(apiError.fieldErrors()).toEqual({
      title: "String should have at least 1 character",
      tags: "must be 1-32 characters",
      limit: "must be at most 100",
    });
  });

  it("copes with an error body that is not a problem document", () => {
    const error = new ApiError(502, "<html>Bad Gateway</html>");

    expect(error.problem).toBeNull();
    expect(error.message).toBe("The server answered 502.");
    expect(error.fieldErrors()).toEqual({});
  });

  it("unwraps a success without a body as undefined", async () => {
    const { send } = network(new Response(null, { status: 204 }));
    const api = createApiClient(createAuthenticatedFetch(tokens("token"), send));

    const result = await api.POST("/api/v1/notifications/read-all");

    expect(unwrap(result)).toBeUndefined();
  });
});
