import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import createClient from "openapi-fetch";
import { createMemoryRouter, RouterProvider, type RouteObject } from "react-router";
import { describe, expect, it } from "vitest";

import type { paths } from "../api/generated/schema";
import type { Role, User } from "../api/types";
import { LoginPage } from "../pages/auth/LoginPage";
import { SessionManager } from "../session/session";
import { SessionProvider } from "../session/SessionProvider";
import { GuestOnly } from "./GuestOnly";
import { RequireAdmin } from "./RequireAdmin";
import { RequireAuth, returnPath } from "./RequireAuth";

const routes: RouteObject[] = [
  { element: <GuestOnly />, children: [{ path: "/login", element: <LoginPage /> }] },
  {
    element: <RequireAuth />,
    children: [
      { path: "/tasks", element: <h1>Tasks</h1> },
      { path: "/tasks/:taskId", element: <h1>Task 42</h1> },
      { element: <RequireAdmin />, children: [{ path: "/admin/users", element: <h1>Users</h1> }] },
    ],
  },
];

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

/** A session against a fake gateway where the cookie holds no session and login works. */
function sessionFor(role: Role, refreshStatus = 422): SessionManager {
  const user: User = { id: "u1", email: "pat@example.com", role, active: true, created_at: "2026-11-28T09:00:00Z" };
  const tokens = { access_token: "token", token_type: "bearer", expires_in: 900 };
  const fetch = async (request: Request): Promise<Response> => {
    const route = `${request.method} ${new URL(request.url).pathname}`;
    switch (route) {
      case "POST /api/v1/auth/refresh":
        return refreshStatus === 200
          ? json(tokens)
          : json({ title: "No session", status: refreshStatus }, refreshStatus);
      case "POST /api/v1/auth/login":
        return json(tokens);
      case "GET /api/v1/auth/me":
        return json(user);
      default:
        throw new TypeError(`no route ${route}`);
    }
  };
  return new SessionManager({ client: createClient<paths>({ baseUrl: "http://localhost", fetch }), locks: null, hint: null });
}

function renderApp(manager: SessionManager, path: string) {
  const router = createMemoryRouter(routes, { initialEntries: [path] });
  render(
    <QueryClientProvider client={new QueryClient()}>
      <SessionProvider manager={manager}>
        <RouterProvider router={router} />
      </SessionProvider>
    </QueryClientProvider>,
  );
  return router;
}

async function logIn() {
  const user = userEvent.setup();
  await user.type(screen.getByLabelText("Email"), "pat@example.com");
  await user.type(screen.getByLabelText("Password"), "correct horse");
  await user.click(screen.getByRole("button", { name: "Log in" }));
}

describe("RequireAuth", () => {
  it("says it is checking the session while it is restored", () => {
    renderApp(sessionFor("user"), "/tasks");

    expect(screen.getByRole("status")).toHaveTextContent("Checking your session…");
  });

  it("sends a visitor to /login with where they were going, and back there after login", async () => {
    const router = renderApp(sessionFor("user"), "/tasks/42?tab=files#notes");

    expect(await screen.findByRole("heading", { name: "Log in" })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/login");
    expect(router.state.location.state).toEqual({
      from: expect.objectContaining({ pathname: "/tasks/42", search: "?tab=files", hash: "#notes" }),
    });

    await logIn();

    expect(await screen.findByRole("heading", { name: "Task 42" })).toBeInTheDocument();
    expect(router.state.location).toMatchObject({ pathname: "/tasks/42", search: "?tab=files", hash: "#notes" });
  });

  it("takes a signed-in visitor of /login to the task list", async () => {
    const router = renderApp(sessionFor("user", 200), "/login");

    expect(await screen.findByRole("heading", { name: "Tasks" })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/tasks");
  });

  it("returns only to paths of this app", () => {
    expect(returnPath({ from: { pathname: "/settings", search: "", hash: "" } })).toBe("/settings");
    expect(returnPath({ from: { pathname: "//evil.example/phish" } })).toBe("/tasks");
    expect(returnPath({ from: { pathname: "/login" } })).toBe("/tasks");
    expect(returnPath(null)).toBe("/tasks");
    expect(returnPath("garbage")).toBe("/tasks");
  });
});

describe("RequireAdmin", () => {
  it("shows a non-admin 'Not allowed' in place of an admin page", async () => {
    const router = renderApp(sessionFor("user", 200), "/admin/users");

    expect(await screen.findByRole("heading", { name: "Not allowed" })).toBeInTheDocument();
    expect(screen.queryByRole("heading", { name: "Users" })).not.toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/admin/users");
  });

  it("shows an admin the page", async () => {
    renderApp(sessionFor("admin", 200), "/admin/users");

    expect(await screen.findByRole("heading", { name: "Users" })).toBeInTheDocument();
  });

  it("sends a visitor of an admin page to /login first, then back to it", async () => {
    const router = renderApp(sessionFor("admin"), "/admin/users");
    await screen.findByRole("heading", { name: "Log in" });

    await logIn();

    expect(await screen.findByRole("heading", { name: "Users" })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/admin/users");
  });
});
