import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import createClient from "openapi-fetch";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { paths } from "../api/generated/schema";
import type { Role } from "../api/types";
import { SessionManager } from "../session/session";
import { SessionProvider } from "../session/SessionProvider";
import { Layout } from "./Layout";

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
}

async function signedIn(role: Role): Promise<SessionManager> {
  const user = { id: "u1", email: "pat@example.com", role, active: true, created_at: "2026-11-28T09:00:00Z" };
  const fetch = async (request: Request): Promise<Response> => {
    const path = new URL(request.url).pathname;
    if (path === "/api/v1/auth/login") return json({ access_token: "token", token_type: "bearer", expires_in: 900 });
    if (path === "/api/v1/auth/me") return json(user);
    if (path === "/api/v1/auth/logout") return new Response(null, { status: 204 });
    throw new TypeError(`no route ${path}`);
  };
  const client = createClient<paths>({ baseUrl: "http://localhost", fetch });
  const manager = new SessionManager({ client, locks: null });
  await manager.login("pat@example.com", "correct horse");
  return manager;
}

/** The notifications the app's API client finds: `unread` of them unread. */
function unreadNotifications(unread: number, more = false) {
  const items = Array.from({ length: unread }, (_, index) => ({ id: `n${index}` }));
  vi.stubGlobal(
    "fetch",
    vi.fn(async () => json({ items, next_cursor: more ? "next" : null })),
  );
}

async function renderLayout(role: Role) {
  const manager = await signedIn(role);
  const router = createMemoryRouter(
    [
      { element: <Layout />, children: [{ path: "/tasks", element: <h1>Tasks</h1> }] },
      { path: "/login", element: <h1>Log in</h1> },
    ],
    { initialEntries: ["/tasks"] },
  );
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <SessionProvider manager={manager}>
        <RouterProvider router={router} />
      </SessionProvider>
    </QueryClientProvider>,
  );
  return { manager, router };
}

describe("Layout", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("offers a skip link, the main navigation and a main landmark", async () => {
    unreadNotifications(0);
    await renderLayout("user");

    const nav = screen.getByRole("navigation", { name: "Main" });
    const links = within(nav).getAllByRole("link").map((link) => link.textContent);
    expect(links).toEqual(["Tasks", "Notifications", "Settings"]);
    expect(within(nav).getByRole("link", { name: "Tasks" })).toHaveAttribute("aria-current", "page");
    expect(screen.getByRole("link", { name: "Skip to content" })).toBeInTheDocument();
    expect(screen.getByRole("main")).toHaveAttribute("id", "main");
    expect(screen.getByRole("button", { name: "Log out" })).toBeInTheDocument();
  });

  it("shows admins the Users and Analytics links", async () => {
    unreadNotifications(0);
    await renderLayout("admin");

    const nav = screen.getByRole("navigation", { name: "Main" });
    expect(within(nav).getByRole("link", { name: "Users" })).toHaveAttribute("href", "/admin/users");
    expect(within(nav).getByRole("link", { name: "Analytics" })).toHaveAttribute("href", "/admin/analytics");
  });

  it("names the unread count in the Notifications link and shows it as a badge", async () => {
    unreadNotifications(3);
    await renderLayout("user");

    expect(await screen.findByRole("link", { name: "Notifications, 3 unread" })).toBeInTheDocument();
    expect(screen.getByTestId("unread-badge")).toHaveTextContent("3");
  });

  it("caps the badge at 99+", async () => {
    unreadNotifications(100, true);
    await renderLayout("user");

    expect(await screen.findByRole("link", { name: "Notifications, 99+ unread" })).toBeInTheDocument();
    expect(screen.getByTestId("unread-badge")).toHaveTextContent("99+");
  });

  it("logs out and goes to the login page", async () => {
    unreadNotifications(0);
    const { manager, router } = await renderLayout("user");

    await userEvent.setup().click(screen.getByRole("button", { name: "Log out" }));

    expect(await screen.findByRole("heading", { name: "Log in" })).toBeInTheDocument();
    expect(router.state.location.pathname).toBe("/login");
    expect(manager.getState().status).toBe("anonymous");
  });
});
