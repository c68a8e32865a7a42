import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { Problem, Profile, ProfilePage } from "../../api/types";
import { makeProfile } from "../../test/fixtures";
import { AdminUsersPage } from "./AdminUsersPage";

const fakeApi = vi.hoisted(() => ({ GET: vi.fn(), PATCH: vi.fn() }));

vi.mock("../../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../api/client")>()),
  api: fakeApi,
}));
vi.mock("../../session/SessionProvider", () => ({
  session: { accessToken: () => null, refresh: async () => null },
  useSession: () => ({
    status: "authenticated",
    user: { id: "admin", email: "root@example.com", role: "admin", active: true, created_at: "2026-11-01T00:00:00Z" },
  }),
}));

function profile(id: string, name: string, overrides: Partial<Profile> = {}): Profile {
  return makeProfile({ id, name, email: `${id}@example.com`, ...overrides });
}

function page(items: Profile[]) {
  const body: ProfilePage = { items, next_cursor: null };
  return { data: body, response: new Response(JSON.stringify(body), { status: 200 }) };
}

function renderPage() {
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={queryClient}>
      <AdminUsersPage />
    </QueryClientProvider>,
  );
}

it("shows a 409 to a role change as the problem's detail and keeps the old role", async () => {
  fakeApi.GET.mockResolvedValue(page([profile("admin", "Root", { role: "admin" })]));
  const conflict: Problem = {
    type: "about:blank",
    title: "Conflict",
    status: 409,
    detail: "An admin cannot demote themself.",
  };
  fakeApi.PATCH.mockResolvedValue({ error: conflict, response: new Response(JSON.stringify(conflict), { status: 409 }) });
  renderPage();

  const role = await screen.findByRole("combobox", { name: "Role of Root" });
  await userEvent.selectOptions(role, "user");

  expect(await screen.findByRole("alert")).toHaveTextContent("An admin cannot demote themself.");
  expect(fakeApi.PATCH).toHaveBeenCalledWith("/api/v1/users/{id}", {
    params: { path: { id: "admin" } },
    body: { role: "user" },
  });
  expect(role).toHaveValue("admin");
});

it("deactivates a user and shows the answer at once", async () => {
  const ada = profile("ada", "Ada");
  fakeApi.GET.mockResolvedValueOnce(page([ada]));
  // The refetch after the change is still in flight while the row already shows it.
  fakeApi.GET.mockReturnValue(new Promise(() => {}));
  fakeApi.PATCH.mockResolvedValue({
    data: { ...ada, active: false },
    response: new Response(null, { status: 200 }),
  });
  renderPage();

  await userEvent.click(await screen.findByRole("button", { name: "Deactivate Ada" }));

  const row = screen.getByRole("row", { name: /Ada/ });
  expect(await within(row).findByRole("button", { name: "Activate Ada" })).toBeInTheDocument();
  expect(within(row).getByText("Inactive")).toBeInTheDocument();
  expect(fakeApi.PATCH).toHaveBeenCalledWith("/api/v1/users/{id}", {
    params: { path: { id: "ada" } },
    body: { active: false },
  });
});

it("searches once the typing settles, with the filters as query parameters", async () => {
  fakeApi.GET.mockResolvedValue(page([profile("ada", "Ada")]));
  renderPage();
  await screen.findByRole("table");

  await userEvent.selectOptions(screen.getByRole("combobox", { name: "Active filter" }), "inactive");
  await userEvent.type(screen.getByRole("searchbox", { name: "Search users" }), "lov");

  await waitFor(() =>
    expect(fakeApi.GET).toHaveBeenLastCalledWith("/api/v1/users", {
      params: { query: { q: "lov", active: false, limit: 20, cursor: undefined } },
      signal: expect.any(AbortSignal),
    }),
  );
  // One request per settled search, not one per key stroke.
  const searches = fakeApi.GET.mock.calls.filter(([, options]) => options.params.query.q !== undefined);
  expect(searches).toHaveLength(1);
});
