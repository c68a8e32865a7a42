import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { RouterProvider, createMemoryRouter } from "react-router";
import { ApiError } from "../api/client";
import type { Problem } from "../api/types";
import { makeProfile } from "../test/fixtures";
import {
  PASSWORD_CHANGED,
  SettingsPage,
  WRONG_CURRENT_PASSWORD,
  passwordChangeErrors,
  timeZoneOptions,
  validatePasswordChange,
  validateProfile,
} from "./SettingsPage";

const fakeApi = vi.hoisted(() => ({ GET: vi.fn(), POST: vi.fn(), PATCH: vi.fn(), DELETE: vi.fn() }));
const fakeSession = vi.hoisted(() => ({
  user: { id: "u1", email: "ada@example.com", role: "user", active: true, created_at: "2026-11-01T00:00:00Z" },
  logout: vi.fn(),
}));

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  api: fakeApi,
}));
vi.mock("../session/SessionProvider", () => ({
  session: { accessToken: () => null, refresh: async () => null },
  useSession: () => ({ status: "authenticated", ...fakeSession, refreshUser: vi.fn() }),
}));

const profile = makeProfile();

function ok<T>(data: T, status = 200) {
  return { data, response: new Response(JSON.stringify(data), { status }) };
}
const noContent = () => ({ response: new Response(null, { status: 204 }) });
function problem(status: number, detail: string, extra: Partial<Problem> = {}) {
  const error: Problem = { type: "about:blank", title: "Problem", status, detail, ...extra };
  return { error, response: new Response(JSON.stringify(error), { status }) };
}

function renderSettings() {
  fakeApi.GET.mockResolvedValue(ok(profile));
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  const router = createMemoryRouter(
    [
      { path: "/settings", element: <SettingsPage /> },
      { path: "/login", element: <h1>Log in</h1> },
    ],
    { initialEntries: ["/settings"] },
  );
  render(
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return { queryClient, router };
}

describe("validateProfile", () => {
  const zones = ["UTC", "Europe/Paris"];
  const valid = { name: "Ada", bio: "", timezone: "UTC", emailNotifications: true };

  it("accepts a valid profile", () => {
    expect(validateProfile(valid, zones)).toEqual({});
  });

  it("needs a name of 1-100 characters after trimming", () => {
    expect(validateProfile({ ...valid, name: "   " }, zones)).toEqual({ name: "Enter your name." });
    expect(validateProfile({ ...valid, name: "x".repeat(101) }, zones)).toEqual({
      name: "Use at most 100 characters.",
    });
    expect(validateProfile({ ...valid, name: ` ${"x".repeat(100)} ` }, zones)).toEqual({});
  });

  it("limits the bio to 500 characters, counting an emoji as one", () => {
    expect(validateProfile({ ...valid, bio: "🙂".repeat(500) }, zones)).toEqual({});
    expect(validateProfile({ ...valid, bio: "x".repeat(501) }, zones)).toEqual({ bio: "Use at most 500 characters." });
  });

  it("needs a time zone from the list", () => {
    expect(validateProfile({ ...valid, timezone: "Mars/Olympus" }, zones)).toEqual({
      timezone: "Choose a time zone from the list.",
    });
  });
});

it("timeZoneOptions puts UTC first and keeps a saved zone the runtime doesn't list", () => {
  const options = timeZoneOptions("Legacy/Zone");
  expect(options[0]).toBe("UTC");
  expect(options).toContain("Europe/Paris");
  expect(options).toContain("Legacy/Zone");
  expect(options.filter((zone) => zone === "UTC")).toHaveLength(1);
});

describe("validatePasswordChange", () => {
  it("needs the current password and a new one of 8-128 characters", () => {
    expect(validatePasswordChange({ current: "", next: "short" }, "ada@example.com")).toEqual({
      current: "Enter your current password.",
      next: "Use at least 8 characters.",
    });
    expect(validatePasswordChange({ current: "old", next: "x".repeat(129) }, undefined)).toEqual({
      next: "Use at most 128 characters.",
    });
    expect(validatePasswordChange({ current: "old", next: "long enough" }, "ada@example.com")).toEqual({});
  });

  it("refuses the email address as the new password", () => {
    expect(validatePasswordChange({ current: "old", next: "ADA@example.com" }, "ada@example.com")).toEqual({
      next: "Don't use your email address as your password.",
    });
  });
});

describe("passwordChangeErrors", () => {
  it("reads a 401 as a wrong current password", () => {
    expect(passwordChangeErrors(new ApiError(401, { status: 401, title: "Unauthorized" }))).toEqual({
      current: WRONG_CURRENT_PASSWORD,
    });
  });

  it("puts a 422's field messages on the matching fields", () => {
    const error = new ApiError(422, {
      status: 422,
      title: "Unprocessable",
      errors: [{ loc: ["body", "new_password"], msg: "must not equal the email" }],
    });
    expect(passwordChangeErrors(error)).toEqual({ next: "must not equal the email" });
  });

  it("leaves other failures to be shown whole", () => {
    expect(passwordChangeErrors(new ApiError(503, { status: 503, title: "Unavailable" }))).toBeNull();
    expect(passwordChangeErrors(new TypeError("Failed to fetch"))).toBeNull();
  });
});

it("saves the profile with PATCH /users/me and says so", async () => {
  renderSettings();
  const name = await screen.findByRole("textbox", { name: "Name" });
  fakeApi.PATCH.mockResolvedValue(ok({ ...profile, name: "Ada Lovelace", timezone: "Europe/Paris" }));

  await userEvent.clear(name);
  await userEvent.type(name, " Ada Lovelace ");
  await userEvent.selectOptions(screen.getByRole("combobox", { name: "Time zone" }), "Europe/Paris");
  await userEvent.click(screen.getByRole("checkbox", { name: "Email notifications" }));
  await userEvent.click(screen.getByRole("button", { name: "Save profile" }));

  expect(await screen.findByText("Profile saved.")).toBeInTheDocument();
  expect(fakeApi.PATCH).toHaveBeenCalledWith("/api/v1/users/me", {
    body: { name: "Ada Lovelace", bio: "", timezone: "Europe/Paris", email_notifications: false },
  });
});

it("doesn't send a bio over 500 characters", async () => {
  renderSettings();
  const bio = await screen.findByRole("textbox", { name: "Bio" });

  await userEvent.click(bio);
  await userEvent.paste("x".repeat(501));
  await userEvent.click(screen.getByRole("button", { name: "Save profile" }));

  expect(await screen.findByText("Use at most 500 characters.")).toBeInTheDocument();
  expect(bio).toHaveAttribute("aria-invalid", "true");
  expect(bio).toHaveFocus();
  expect(fakeApi.PATCH).not.toHaveBeenCalled();
});

async function changePassword(current: string, next: string) {
  await userEvent.type(await screen.findByLabelText("Current password"), current);
  await userEvent.type(screen.getByLabelText("New password"), next);
  await userEvent.click(screen.getByRole("button", { name: "Change password" }));
}

it("changes the password and says other sessions were signed out", async () => {
  renderSettings();
  fakeApi.POST.mockResolvedValue(noContent());

  await changePassword("old password", "new password");

  expect(await screen.findByText(PASSWORD_CHANGED)).toBeInTheDocument();
  expect(fakeApi.POST).toHaveBeenCalledWith("/api/v1/auth/change-password", {
    body: { current_password: "old password", new_password: "new password" },
  });
  expect(screen.getByLabelText("Current password")).toHaveValue("");
});

it("shows a 401 to change-password as a wrong current password", async () => {
  renderSettings();
  fakeApi.POST.mockResolvedValue(problem(401, "Invalid credentials"));

  await changePassword("wrong password", "new password");

  expect(await screen.findByText(WRONG_CURRENT_PASSWORD)).toBeInTheDocument();
  expect(screen.getByLabelText("Current password")).toHaveAttribute("aria-invalid", "true");
  expect(screen.getByLabelText("Current password")).toHaveFocus();
  expect(screen.queryByText(PASSWORD_CHANGED)).not.toBeInTheDocument();
});

it("deletes the account only after DELETE is typed, then logs out and goes to /login", async () => {
  const { router } = renderSettings();
  fakeApi.DELETE.mockResolvedValue(noContent());
  fakeSession.logout.mockResolvedValue(undefined);

  await userEvent.click(await screen.findByRole("button", { name: "Delete account" }));
  const confirmation = screen.getByRole("textbox", { name: "Type DELETE to confirm" });
  expect(confirmation).toHaveFocus();
  await userEvent.type(confirmation, "delete");
  await userEvent.click(screen.getByRole("button", { name: "Delete account" }));
  expect(await screen.findByText("Type DELETE in capitals to confirm.")).toBeInTheDocument();
  expect(fakeApi.DELETE).not.toHaveBeenCalled();

  await userEvent.clear(confirmation);
  await userEvent.type(confirmation, "DELETE");
  await userEvent.click(screen.getByRole("button", { name: "Delete account" }));

  await waitFor(() => expect(router.state.location.pathname).toBe("/login"));
  expect(fakeApi.DELETE).toHaveBeenCalledWith("/api/v1/users/me");
  expect(fakeSession.logout).toHaveBeenCalledOnce();
});

it("shows a 409 to account deletion as the problem's detail and stays signed in", async () => {
  renderSettings();
  fakeApi.DELETE.mockResolvedValue(problem(409, "The last active admin cannot delete their account."));

  await userEvent.click(await screen.findByRole("button", { name: "Delete account" }));
  await userEvent.type(screen.getByRole("textbox", { name: "Type DELETE to confirm" }), "DELETE");
  await userEvent.click(screen.getByRole("button", { name: "Delete account" }));

  expect(await screen.findByRole("alert")).toHaveTextContent("The last active admin cannot delete their account.");
  expect(fakeSession.logout).not.toHaveBeenCalled();
});
