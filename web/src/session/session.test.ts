import createClient from "openapi-fetch";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { paths } from "../api/generated/schema";
import { ApiError } from "../api/problem";
import type { User } from "../api/types";
import {
  RETRY_AFTER_FAILURE_MS,
  SessionManager,
  type Locks,
  type SessionHint,
  type SessionState,
} from "./session";

const ALICE: User = {
  id: "u-alice",
  email: "alice@example.com",
  role: "user",
  active: true,
  created_at: "2026-11-28T09:42:14.123Z",
};

type Handler = (request: Request) => Response | Promise<Response>;

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

function problem(status: number, detail: string): Response {
  return json({ type: "about:blank", title: "Error", status, detail }, status);
}

function tokens(accessToken: string, expiresIn = 900) {
  return { access_token: accessToken, token_type: "bearer", expires_in: expiresIn };
}

interface Sent {
  route: string;
  search: string;
  authorization: string | null;
  requestedWith: string | null;
  body: string;
}

/** The gateway's auth routes as the test defines them, and every request they received. */
function fakeGateway(routes: Record<string, Handler>) {
  const sent: Sent[] = [];
  const fetch = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const route = `${request.method} ${url.pathname}`;
    sent.push({
      route,
      search: url.search,
      authorization: request.headers.get("Authorization"),
      requestedWith: request.headers.get("X-Requested-With"),
      body: await request.clone().text(),
    });
    const handler = routes[route];
    if (handler === undefined) {
      throw new TypeError("Failed to fetch");
    }
    return handler(request);
  };
  const sentTo = (route: string) => sent.filter((request) => request.route === route);
  return { fetch, sent, sentTo };
}

/** A SessionHint in memory: `signedIn` says whether this browser held a session before. */
function memoryHint(signedIn: boolean): SessionHint & { value: boolean } {
  const hint = {
    value: signedIn,
    present: () => hint.value,
    set: () => {
      hint.value = true;
    },
    clear: () => {
      hint.value = false;
    },
  };
  return hint;
}

function sessionWith(
  routes: Record<string, Handler>,
  locks: Locks | null = null,
  hint: SessionHint = memoryHint(true),
) {
  const gateway = fakeGateway(routes);
  const client = createClient<paths>({ baseUrl: "http://localhost", fetch: gateway.fetch });
  const session = new SessionManager({ client, locks, hint });
  const states: SessionState[] = [];
  session.subscribe((state) => states.push(state));
  return { session, gateway, states };
}

/** Refresh tokens answered in turn: "token-1", "token-2", ... */
function rotatingRefresh(): Handler {
  let issued = 0;
  return () => {
    issued += 1;
    return json(tokens(`token-${issued}`));
  };
}

const me: Handler = () => json(ALICE);
const loginOk: Handler = () => json(tokens("login-token"));

describe("SessionManager", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  describe("restore", () => {
    it("asks nothing of the server in a browser that never signed in", async () => {
      const { session, gateway } = sessionWith({}, null, memoryHint(false));

      await session.restore();

      expect(session.getState().status).toBe("anonymous");
      expect(gateway.sent).toEqual([]);
    });

    it("remembers a sign-in for later page loads and forgets it on logout", async () => {
      const hint = memoryHint(false);
      const { session } = sessionWith(
        {
          "POST /api/v1/auth/login": loginOk,
          "GET /api/v1/auth/me": me,
          "POST /api/v1/auth/logout": () => new Response(null, { status: 204 }),
        },
        null,
        hint,
      );

      await session.login("alice@example.com", "correct horse");
      const afterLogin = hint.value;
      await session.logout();

      expect(afterLogin).toBe(true);
      expect(hint.value).toBe(false);
    });

    it("forgets the sign-in when the cookie's session is refused", async () => {
      const hint = memoryHint(true);
      const { session } = sessionWith(
        { "POST /api/v1/auth/refresh": () => problem(401, "revoked") },
        null,
        hint,
      );

      await session.restore();

      expect(session.getState().status).toBe("anonymous");
      expect(hint.value).toBe(false);
    });

    it("resumes the session the refresh cookie holds", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/refresh": rotatingRefresh(),
        "GET /api/v1/auth/me": me,
      });
      expect(session.getState().status).toBe("loading");

      await session.restore();

      expect(session.getState()).toEqual({ status: "authenticated", user: ALICE });
      expect(session.accessToken()).toBe("token-1");
      const [refresh, readMe] = gateway.sent;
      expect(refresh).toMatchObject({ search: "?refresh_cookie=true", requestedWith: "taskmesh", body: "" });
      expect(readMe).toMatchObject({ route: "GET /api/v1/auth/me", authorization: "Bearer token-1" });
    });

    it.each([
      ["no refresh cookie", 422],
      ["a used or revoked refresh token", 401],
    ])("is anonymous with %s (%i)", async (_reason, status) => {
      const { session } = sessionWith({ "POST /api/v1/auth/refresh": () => problem(status, "no") });

      await session.restore();

      expect(session.getState()).toEqual({ status: "anonymous", user: null });
      expect(session.accessToken()).toBeNull();
    });

    it("is anonymous when the server cannot be reached", async () => {
      const { session } = sessionWith({});

      await session.restore();

      expect(session.getState().status).toBe("anonymous");
    });

    it("runs once however often it is asked", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/refresh": rotatingRefresh(),
        "GET /api/v1/auth/me": me,
      });

      await Promise.all([session.restore(), session.restore()]);
      await session.restore();

      expect(gateway.sentTo("POST /api/v1/auth/refresh")).toHaveLength(1);
    });
  });

  describe("login and register", () => {
    it("logs in with the refresh token kept in the cookie and the access token in memory only", async () => {
      const setItem = vi.spyOn(Storage.prototype, "setItem");
      const { session, gateway } = sessionWith({ "POST /api/v1/auth/login": loginOk, "GET /api/v1/auth/me": me });

      await expect(session.login("alice@example.com", "correct horse")).resolves.toEqual(ALICE);

      expect(session.getState()).toEqual({ status: "authenticated", user: ALICE });
      expect(session.accessToken()).toBe("login-token");
      const [login] = gateway.sentTo("POST /api/v1/auth/login");
      expect(login?.search).toBe("?refresh_cookie=true");
      expect(JSON.parse(login?.body ?? "")).toEqual({ email: "alice@example.com", password: "correct horse" });
      expect(setItem).not.toHaveBeenCalled();
      expect(localStorage.length + sessionStorage.length).toBe(0);
      expect(document.cookie).toBe("");
    });

    it("throws the API's problem on wrong credentials and stays anonymous", async () => {
      const { session } = sessionWith({
        "POST /api/v1/auth/refresh": () => problem(422, "no cookie"),
        "POST /api/v1/auth/login": () => problem(401, "Wrong email or password."),
      });
      await session.restore();

      const error = await session.login("alice@example.com", "wrong").catch((caught: unknown) => caught);

      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({ status: 401, message: "Wrong email or password." });
      expect(session.getState().status).toBe("anonymous");
    });

    it("registers and signs in with the user the answer carries", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/register": () => json({ ...tokens("new-token"), user: ALICE }, 201),
      });

      await session.register("alice@example.com", "correct horse", "Alice");

      expect(session.getState()).toEqual({ status: "authenticated", user: ALICE });
      expect(session.accessToken()).toBe("new-token");
      expect(gateway.sent.map((request) => `${request.route}${request.search}`)).toEqual([
        "POST /api/v1/auth/register?refresh_cookie=true",
      ]);
    });
  });

  describe("refresh", () => {
    it("makes concurrent refreshes one request", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/refresh": rotatingRefresh(),
        "GET /api/v1/auth/me": me,
      });

      const results = await Promise.all([session.refresh(), session.refresh(), session.refresh()]);

      expect(results).toEqual(["token-1", "token-1", "token-1"]);
      expect(gateway.sentTo("POST /api/v1/auth/refresh")).toHaveLength(1);
    });

    it("takes turns with other tabs through a Web Lock", async () => {
      const held: string[] = [];
      const locks: Locks = {
        request: (name, callback) => {
          held.push(name);
          return callback();
        },
      };
      const { session } = sessionWith(
        { "POST /api/v1/auth/refresh": rotatingRefresh(), "GET /api/v1/auth/me": me },
        locks,
      );

      await expect(session.refresh()).resolves.toBe("token-1");

      expect(held).toEqual(["taskmesh-session-refresh"]);
    });

    it("refreshes silently a minute before the access token expires", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/login": loginOk,
        "POST /api/v1/auth/refresh": rotatingRefresh(),
        "GET /api/v1/auth/me": me,
      });
      await session.login("alice@example.com", "correct horse");

      await vi.advanceTimersByTimeAsync((900 - 60) * 1000 - 1);
      expect(gateway.sentTo("POST /api/v1/auth/refresh")).toHaveLength(0);

      await vi.advanceTimersByTimeAsync(1);
      expect(gateway.sentTo("POST /api/v1/auth/refresh")).toHaveLength(1);
      expect(session.accessToken()).toBe("token-1");

      await vi.advanceTimersByTimeAsync(840 * 1000);
      expect(session.accessToken()).toBe("token-2");
    });

    it("ends the session when the refresh token is refused", async () => {
      const { session, states } = sessionWith({
        "POST /api/v1/auth/login": loginOk,
        "GET /api/v1/auth/me": me,
        "POST /api/v1/auth/refresh": () => problem(401, "The refresh token was already used."),
      });
      await session.login("alice@example.com", "correct horse");

      await expect(session.refresh()).resolves.toBeNull();

      expect(session.getState()).toEqual({ status: "anonymous", user: null });
      expect(session.accessToken()).toBeNull();
      expect(states.map((state) => state.status)).toEqual(["authenticated", "anonymous"]);
    });

    it("keeps the session through a passing failure and tries again later", async () => {
      let available = false;
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/login": loginOk,
        "GET /api/v1/auth/me": me,
        "POST /api/v1/auth/refresh": () => (available ? json(tokens("token-after-outage")) : problem(503, "down")),
      });
      await session.login("alice@example.com", "correct horse");

      await expect(session.refresh()).resolves.toBeNull();
      expect(session.getState().status).toBe("authenticated");
      expect(session.accessToken()).toBe("login-token");

      available = true;
      await vi.advanceTimersByTimeAsync(RETRY_AFTER_FAILURE_MS);
      expect(gateway.sentTo("POST /api/v1/auth/refresh")).toHaveLength(2);
      expect(session.accessToken()).toBe("token-after-outage");
    });
  });

  describe("logout", () => {
    it("ends the session on the server with the cookie's CSRF header, then here", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/login": loginOk,
        "GET /api/v1/auth/me": me,
        "POST /api/v1/auth/logout": () => new Response(null, { status: 204 }),
      });
      await session.login("alice@example.com", "correct horse");

      await session.logout();

      expect(gateway.sentTo("POST /api/v1/auth/logout")).toEqual([
        expect.objectContaining({ authorization: "Bearer login-token", requestedWith: "taskmesh", body: "" }),
      ]);
      expect(session.getState()).toEqual({ status: "anonymous", user: null });
      expect(session.accessToken()).toBeNull();
    });

    it("ends the session here even when the server cannot be reached", async () => {
      const { session } = sessionWith({ "POST /api/v1/auth/login": loginOk, "GET /api/v1/auth/me": me });
      await session.login("alice@example.com", "correct horse");

      await session.logout();

      expect(session.getState().status).toBe("anonymous");
      expect(session.accessToken()).toBeNull();
    });

    it("refreshes an expired access token so the server can revoke the cookie's session", async () => {
      const { session, gateway } = sessionWith({
        "POST /api/v1/auth/login": loginOk,
        "GET /api/v1/auth/me": me,
        "POST /api/v1/auth/refresh": rotatingRefresh(),
        "POST /api/v1/auth/logout": (request) =>
          request.headers.get("Authorization") === "Bearer login-token"
            ? problem(401, "expired")
            : new Response(null, { status: 204 }),
      });
      await session.login("alice@example.com", "correct horse");

      await session.logout();

      expect(gateway.sentTo("POST /api/v1/auth/logout").map((request) => request.authorization)).toEqual([
        "Bearer login-token",
        "Bearer token-1",
      ]);
      expect(session.getState().status).toBe("anonymous");
    });

    it("is not undone by a refresh that answers after it", async () => {
      let answerRefresh: (response: Response) => void = () => undefined;
      const { session } = sessionWith({
        "POST /api/v1/auth/login": loginOk,
        "GET /api/v1/auth/me": me,
        "POST /api/v1/auth/logout": () => new Response(null, { status: 204 }),
        "POST /api/v1/auth/refresh": () => new Promise<Response>((resolve) => (answerRefresh = resolve)),
      });
      await session.login("alice@example.com", "correct horse");
      const refreshing = session.refresh();
      await vi.advanceTimersByTimeAsync(0);

      await session.logout();
      answerRefresh(json(tokens("late-token")));

      await expect(refreshing).resolves.toBeNull();
      expect(session.getState().status).toBe("anonymous");
      expect(session.accessToken()).toBeNull();
    });
  });
});
