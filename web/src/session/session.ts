/**
 * The browser's login session, framework-free.
 *
 * The refresh token lives in an HttpOnly cookie the gateway sets (`?refresh_cookie=true`),
 * out of JavaScript's reach; the access token lives only in this object's memory, never in
 * storage. A page load restores the session from the cookie; the access token is refreshed
 * a minute before it expires and whenever the API refuses it.
 *
 * JavaScript cannot see whether the HttpOnly cookie exists, so a page load of a visitor who
 * never signed in would send a refresh that must fail (and the browser logs every failed
 * request as a console error). A `SessionHint` — a flag, no secret — remembers in
 * localStorage that this browser holds a session: restore() asks the server only then.
 */
import type { Client } from "openapi-fetch";

import type { paths } from "../api/generated/schema";
import { unwrap } from "../api/problem";
import type { Tokens, User } from "../api/types";

export type SessionStatus = "loading" | "anonymous" | "authenticated";

export interface SessionState {
  readonly status: SessionStatus;
  readonly user: User | null;
}

export type SessionListener = (state: SessionState) => void;

/** The part of the Web Locks API (`navigator.locks`) the session needs. */
export interface Locks {
  request<T>(name: string, callback: () => Promise<T>): Promise<T>;
}

/** Whether this browser may hold a refresh cookie; shared by its tabs, never a credential. */
export interface SessionHint {
  present(): boolean;
  set(): void;
  clear(): void;
}

export interface SessionOptions {
  /** A client that adds no token of its own: the session sets its calls' headers itself. */
  client: Client<paths>;
  /** Serialises refreshes across tabs; defaults to `navigator.locks` where there is one. */
  locks?: Locks | null;
  /** Defaults to a flag in localStorage; null: always ask the server on restore(). */
  hint?: SessionHint | null;
}

/** Refresh this long before the access token expires. */
export const REFRESH_MARGIN_S = 60;
/** After a refresh failed for a reason other than a refusal (network, 5xx, 429). */
export const RETRY_AFTER_FAILURE_MS = 15_000;
const REFRESH_LOCK = "taskmesh-session-refresh";
const COOKIE_MODE = { refresh_cookie: true } as const;
/** The CSRF guard the gateway requires whenever the refresh token comes from the cookie. */
const CSRF_HEADER = { "x-requested-with": "taskmesh" } as const;

const LOADING: SessionState = { status: "loading", user: null };
const ANONYMOUS: SessionState = { status: "anonymous", user: null };

export class SessionManager {
  private readonly client: Client<paths>;
  private readonly locks: Locks | null;
  private readonly hint: SessionHint | null;
  private readonly listeners = new Set<SessionListener>();
  private state: SessionState = LOADING;
  private token: string | null = null;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private refreshing: Promise<string | null> | null = null;
  private restoring: Promise<void> | null = null;
  /** Grows whenever a session starts or ends, so that late answers of older work are dropped. */
  private generation = 0;

  constructor(options: SessionOptions) {
    this.client = options.client;
    this.locks = options.locks === undefined ? browserLocks() : options.locks;
    this.hint = options.hint === undefined ? storageHint() : options.hint;
  }

  readonly getState = (): SessionState => this.state;

  readonly subscribe = (listener: SessionListener): (() => void) => {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  };

  accessToken(): string | null {
    return this.token;
  }

  /** On page load: resume the session the refresh cookie holds, if any. Runs once. */
  restore(): Promise<void> {
    if (this.state.status !== "loading") {
      return Promise.resolve();
    }
    if (this.hint !== null && !this.hint.present()) {
      this.end();
      return Promise.resolve();
    }
    this.restoring ??= this.refresh().then(() => {
      if (this.state.status === "loading") {
        this.end();
      }
    });
    return this.restoring;
  }

  /** Sign in; throws `ApiError` (401 wrong credentials, 403 deactivated, 429 locked out). */
  async login(email: string, password: string): Promise<User> {
    const tokens = unwrap(
      await this.client.POST("/api/v1/auth/login", {
        params: { query: COOKIE_MODE },
        body: { email, password },
      }),
    );
    const user = await this.fetchUser(tokens.access_token);
    this.start(tokens, user);
    return user;
  }

  /** Create an account and sign in; throws `ApiError` (409 email taken, 422 invalid). */
  async register(email: string, password: string, name: string): Promise<User> {
    const created = unwrap(
      await this.client.POST("/api/v1/auth/register", {
        params: { query: COOKIE_MODE },
        body: { email, password, name },
      }),
    );
    this.start(created, created.user);
    return created.user;
  }

  /**
   * A new access token, or null when there is none to be had. Concurrent calls share one
   * request, and tabs take turns: a refresh token is single-use, and presenting a used one
   * revokes the whole session.
   */
  refresh(): Promise<string | null> {
    const generation = this.generation;
    this.refreshing ??= this.exclusively(() => this.rotate(generation)).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** End the session on the server, then here; here even when the server cannot be reached. */
  async logout(): Promise<void> {
    const token = this.token;
    try {
      if (token !== null) {
        await this.endOnServer(token);
      }
    } catch {
      // Unreachable: the local session still ends, and the access token expires on its own.
    } finally {
      this.end();
    }
  }

  /** Read the signed-in user again (after something changed it). */
  async reloadUser(): Promise<void> {
    const token = this.token;
    if (token === null) {
      return;
    }
    const generation = this.generation;
    const user = await this.fetchUser(token);
    if (generation === this.generation) {
      this.setState({ status: "authenticated", user });
    }
  }

  /** Exchange the cookie's refresh token, unless the session `generation` belongs to has ended. */
  private async rotate(generation: number): Promise<string | null> {
    if (generation !== this.generation) {
      return this.token;
    }
    const outcome = await this.requestTokens();
    if (generation !== this.generation) {
      return this.token;
    }
    if (outcome === "refused") {
      this.end();
      return null;
    }
    if (outcome === "unavailable") {
      return this.refreshFailed();
    }
    const user = await this.fetchUser(outcome.access_token).catch(() => this.state.user);
    if (generation !== this.generation) {
      return this.token;
    }
    if (user === null) {
      return this.refreshFailed();
    }
    this.start(outcome, user);
    return outcome.access_token;
  }

  private async requestTokens(): Promise<Tokens | "refused" | "unavailable"> {
    try {
      const { data, response } = await this.client.POST("/api/v1/auth/refresh", {
        params: { query: COOKIE_MODE, header: CSRF_HEADER },
      });
      if (response.ok && data !== undefined) {
        return data;
      }
      return isRefusal(response.status) ? "refused" : "unavailable";
    } catch {
      return "unavailable";
    }
  }

  private refreshFailed(): null {
    if (this.state.status === "loading") {
      this.end();
    } else {
      this.schedule(RETRY_AFTER_FAILURE_MS);
    }
    return null;
  }

  private async endOnServer(token: string): Promise<void> {
    const { response } = await this.postLogout(token);
    if (response.status === 401) {
      // The access token had expired: with a fresh one the server revokes the cookie's session too.
      const fresh = await this.refresh();
      if (fresh !== null) {
        await this.postLogout(fresh);
      }
    }
  }

  private postLogout(token: string) {
    return this.client.POST("/api/v1/auth/logout", {
      params: { header: CSRF_HEADER },
      headers: bearer(token),
    });
  }

  private async fetchUser(token: string): Promise<User> {
    return unwrap(await this.client.GET("/api/v1/auth/me", { headers: bearer(token) }));
  }

  private start(tokens: Tokens, user: User): void {
    this.generation += 1;
    this.token = tokens.access_token;
    this.hint?.set();
    this.schedule(refreshDelayMs(tokens.expires_in));
    this.setState({ status: "authenticated", user });
  }

  private end(): void {
    this.generation += 1;
    this.token = null;
    this.hint?.clear();
    clearTimeout(this.timer);
    this.setState(ANONYMOUS);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.refresh(), delayMs);
  }

  private exclusively<T>(work: () => Promise<T>): Promise<T> {
    return this.locks === null ? work() : this.locks.request(REFRESH_LOCK, work);
  }

  private setState(next: SessionState): void {
    if (next.status === this.state.status && next.user === this.state.user) {
      return;
    }
    this.state = next;
    for (const listener of [...this.listeners]) {
      listener(next);
    }
  }
}

/** When to refresh a token that lives `expiresIn` seconds: a margin before, at half-life at least. */
export function refreshDelayMs(expiresIn: number): number {
  return Math.max(expiresIn - REFRESH_MARGIN_S, expiresIn / 2) * 1000;
}

/** The server refused the refresh token itself (used, revoked, missing), not a passing failure. */
function isRefusal(status: number): boolean {
  return status >= 400 && status < 500 && status !== 408 && status !== 429;
}

function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

const HINT_KEY = "taskmesh.signed-in";

function storageHint(): SessionHint | null {
  if (typeof localStorage === "undefined") {
    return null;
  }
  return {
    present: () => localStorage.getItem(HINT_KEY) === "1",
    set: () => localStorage.setItem(HINT_KEY, "1"),
    clear: () => localStorage.removeItem(HINT_KEY),
  };
}

function browserLocks(): Locks | null {
  if (typeof navigator === "undefined" || !("locks" in navigator) || !navigator.locks) {
    return null;
  }
  const locks = navigator.locks;
  return { request: async (name, callback) => await locks.request(name, callback) };
}
