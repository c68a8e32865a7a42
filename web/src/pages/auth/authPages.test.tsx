import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import createClient from "openapi-fetch";
import { createMemoryRouter, RouterProvider } from "react-router";
import { afterEach, describe, expect, it, vi } from "vitest";

import type { paths } from "../../api/generated/schema";
import { SessionManager } from "../../session/session";
import { SessionProvider } from "../../session/SessionProvider";
import { ForgotPasswordPage, RESET_LINK_SENT } from "./ForgotPasswordPage";
import { RegisterPage } from "./RegisterPage";
import { ResetPasswordPage } from "./ResetPasswordPage";

function problem(status: number, detail: string, errors?: { loc: string[]; msg: string }[]): Response {
  const body = { type: "about:blank", title: "Error", status, detail, errors };
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/problem+json" } });
}

/** What the gateway answers, to the session's calls and to the app's API client alike. */
function gatewayAnswers(answer: (request: Request) => Response) {
  const requests: Request[] = [];
  const fetch = vi.fn(async (request: Request) => {
    requests.push(request.clone());
    return answer(request);
  });
  vi.stubGlobal("fetch", fetch);
  const client = createClient<paths>({ baseUrl: "http://localhost", fetch });
  const manager = new SessionManager({ client, locks: null });
  return { manager, requests };
}

function renderPage(manager: SessionManager, path: string) {
  const router = createMemoryRouter(
    [
      { path: "/register", element: <RegisterPage /> },
      { path: "/forgot-password", element: <ForgotPasswordPage /> },
      { path: "/reset-password", element: <ResetPasswordPage /> },
    ],
    { initialEntries: [path] },
  );
  render(
    <QueryClientProvider client={new QueryClient()}>
      <SessionProvider manager={manager}>
        <RouterProvider router={router} />
      </SessionProvider>
    </QueryClientProvider>,
  );
}

describe("the visitor pages", () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it("register: marks a taken email on its field and announces it", async () => {
    const { manager } = gatewayAnswers((request) =>
      new URL(request.url).pathname === "/api/v1/auth/register"
        ? problem(409, "An account with this email already exists.")
        : problem(422, "No refresh cookie"),
    );
    renderPage(manager, "/register");
    const user = userEvent.setup();

    await user.type(screen.getByLabelText("Name"), "Pat");
    await user.type(screen.getByLabelText("Email"), "pat@example.com");
    await user.type(screen.getByLabelText(/^Password/), "correct horse");
    await user.click(screen.getByRole("button", { name: "Create account" }));

    const email = screen.getByLabelText("Email");
    expect(await screen.findByRole("alert")).toHaveTextContent("An account with this email already exists.");
    expect(email).toHaveAttribute("aria-invalid", "true");
    expect(email).toHaveAccessibleDescription("An account with this email already exists.");
    expect(screen.getByLabelText("Name")).not.toHaveAttribute("aria-invalid");
  });

  it("forgot password: says the same thing whether or not the account exists", async () => {
    const { manager, requests } = gatewayAnswers((request) =>
      new URL(request.url).pathname === "/api/v1/auth/forgot-password"
        ? new Response(null, { status: 202 })
        : problem(422, "No refresh cookie"),
    );
    renderPage(manager, "/forgot-password");
    const user = userEvent.setup();

    await user.type(screen.getByLabelText("Email"), "  someone@example.com ");
    await user.click(screen.getByRole("button", { name: "Send reset link" }));

    expect(await screen.findByText(RESET_LINK_SENT)).toHaveAttribute("role", "status");
    const sent = requests.find((request) => request.url.endsWith("/api/v1/auth/forgot-password"));
    expect(await sent?.json()).toEqual({ email: "someone@example.com" });
  });

  it("reset password: sends the link's token, and offers a new link when it is refused", async () => {
    const { manager, requests } = gatewayAnswers((request) =>
      new URL(request.url).pathname === "/api/v1/auth/reset-password"
        ? problem(400, "The reset token is invalid, already used or expired.")
        : problem(422, "No refresh cookie"),
    );
    renderPage(manager, "/reset-password?token=abc123");
    const user = userEvent.setup();

    await user.type(screen.getByLabelText(/^New password/), "a new secret");
    await user.click(screen.getByRole("button", { name: "Set password" }));

    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The reset token is invalid, already used or expired.");
    const newLink = screen.getByRole("link", { name: "Ask for a new reset link" });
    expect(newLink).toHaveAttribute("href", "/forgot-password");
    const sent = requests.find((request) => request.url.endsWith("/api/v1/auth/reset-password"));
    expect(await sent?.json()).toEqual({ token: "abc123", new_password: "a new secret" });
  });

  it("reset password: explains a link without its token", () => {
    const { manager } = gatewayAnswers(() => problem(422, "No refresh cookie"));
    renderPage(manager, "/reset-password");

    expect(screen.getByText(/This reset link is incomplete/)).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Set password" })).not.toBeInTheDocument();
  });
});
