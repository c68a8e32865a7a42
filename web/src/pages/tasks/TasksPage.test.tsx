import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Task } from "../../api/types";
import { makeProfile } from "../../test/fixtures";
import { TasksPage } from "./TasksPage";
import { fakeApi, json, makeTask, renderPage, type FakeApi } from "./testing";

const ME = "user-me";

vi.mock("../../session/SessionProvider", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../session/SessionProvider")>()),
  useSession: () => ({
    status: "authenticated",
    user: { id: ME, email: "me@example.com", role: "user", active: true, created_at: "" },
  }),
}));

const PROFILE = makeProfile({ id: ME, email: "me@example.com", name: "Me", timezone: "Europe/Berlin" });

afterEach(() => {
  vi.unstubAllGlobals();
});

/** A fake API holding `tasks`: lists them (two per page), creates and patches them. */
function taskServer(tasks: Task[]): FakeApi {
  return fakeApi()
    .on("GET", "/api/v1/users/me", () => json(PROFILE))
    .on("GET", "/api/v1/tasks", (request) => {
      const cursor = Number(new URL(request.url).searchParams.get("cursor") ?? "0");
      const next = cursor + 2 < tasks.length ? String(cursor + 2) : null;
      return json({ items: tasks.slice(cursor, cursor + 2), next_cursor: next });
    })
    .on("POST", "/api/v1/tasks", async (request) => {
      const body = (await request.json()) as Pick<Task, "title">;
      const created = makeTask({ id: `task-${tasks.length + 1}`, owner_id: ME, title: body.title });
      tasks.unshift(created);
      return json(created, 201);
    })
    .on("PATCH", /\/api\/v1\/tasks\/([^/]+)/, async (request, match) => {
      const index = tasks.findIndex((task) => task.id === match[1]);
      const current = tasks[index] as Task;
      const changed = { ...current, ...(await request.json()), version: current.version + 1 };
      tasks[index] = changed;
      return json(changed);
    });
}

function listQueries(server: FakeApi): URLSearchParams[] {
  return server.sent("GET", "/api/v1/tasks").map((request) => new URL(request.url).searchParams);
}

describe("TasksPage", () => {
  it("restores its filters from the URL and asks the API for exactly them", async () => {
    const server = taskServer([makeTask({ owner_id: ME })]);
    renderPage(<TasksPage />, {
      path: "/tasks",
      url: "/tasks?q=report&status=todo&tag=home&tag=garden&scope=owned&due_from=2026-07-01&due_until=2026-07-31&sort=-priority",
    });

    expect(await screen.findByRole("link", { name: "Write the report" })).toBeInTheDocument();
    expect(screen.getByRole("searchbox", { name: "Search tasks" })).toHaveValue("report");
    expect(screen.getByRole("combobox", { name: "Status filter" })).toHaveValue("todo");
    expect(screen.getByRole("combobox", { name: "Scope" })).toHaveValue("owned");
    expect(screen.getByRole("combobox", { name: "Sort" })).toHaveValue("-priority");
    expect(screen.getByRole("textbox", { name: "Tag filter" })).toHaveValue("home, garden");

    const [query] = listQueries(server);
    expect(Object.fromEntries(query ?? [])).toEqual({
      q: "report",
      status: "todo",
      tag: "garden",
      scope: "owned",
      // The profile's zone is Europe/Berlin (UTC+2 in July).
      due_after: "2026-06-30T21:59:59.999Z",
      due_before: "2026-07-31T22:00:00.000Z",
      sort: "-priority",
      limit: "20",
    });
    expect(query?.getAll("tag")).toEqual(["home", "garden"]);
  });

  it("puts a changed filter in the URL and lists accordingly", async () => {
    const server = taskServer([makeTask({ owner_id: ME })]);
    const { router } = renderPage(<TasksPage />, { path: "/tasks", url: "/tasks" });
    const user = userEvent.setup();
    await screen.findByRole("link", { name: "Write the report" });

    await user.selectOptions(screen.getByRole("combobox", { name: "Priority filter" }), "urgent");
    await user.type(screen.getByRole("searchbox", { name: "Search tasks" }), "fence{Enter}");

    await waitFor(() => {
      expect(router.state.location.search).toBe("?q=fence&priority=urgent");
    });
    await waitFor(() => {
      expect(listQueries(server).at(-1)?.get("q")).toBe("fence");
    });
    expect(listQueries(server).at(-1)?.get("priority")).toBe("urgent");
  });

  it("adds a task and shows it in the list", async () => {
    const server = taskServer([]);
    renderPage(<TasksPage />, { path: "/tasks", url: "/tasks" });
    const user = userEvent.setup();
    expect(await screen.findByText("No tasks yet: add one above.")).toBeInTheDocument();

    await user.type(screen.getByRole("textbox", { name: "New task title" }), "Buy milk");
    await user.click(screen.getByRole("button", { name: "Add task" }));

    const list = await screen.findByRole("list", { name: "Tasks" });
    expect(within(list).getByRole("link", { name: "Buy milk" })).toHaveAttribute("href", "/tasks/task-1");
    expect(screen.getByRole("textbox", { name: "New task title" })).toHaveValue("");
    const [create] = server.sent("POST", "/api/v1/tasks");
    expect(await create?.json()).toMatchObject({ title: "Buy milk" });
    expect(create?.headers.get("Idempotency-Key")).toMatch(/^[0-9a-f]{32}$/);
  });

  it("changes a task's status in place, for its owner and its assignee", async () => {
    const owned = makeTask({ id: "task-owned", owner_id: ME, title: "Mine", version: 7 });
    const assigned = makeTask({ id: "task-assigned", assignee_id: ME, title: "Theirs" });
    const server = taskServer([owned, assigned]);
    renderPage(<TasksPage />, { path: "/tasks", url: "/tasks" });
    const user = userEvent.setup();

    await user.selectOptions(await screen.findByRole("combobox", { name: "Status of Mine" }), "done");
    await user.selectOptions(screen.getByRole("combobox", { name: "Status of Theirs" }), "in_progress");

    await waitFor(() => {
      expect(screen.getByRole("combobox", { name: "Status of Theirs" })).toHaveValue("in_progress");
    });
    expect(screen.getByRole("combobox", { name: "Status of Mine" })).toHaveValue("done");
    const [first, second] = server.sent("PATCH", /\/api\/v1\/tasks\/[^/]+/);
    expect(first?.headers.get("If-Match")).toBe('"7"');
    expect(await first?.json()).toEqual({ status: "done" });
    expect(await second?.json()).toEqual({ status: "in_progress" });
  });

  it("loads the next page on 'Load more'", async () => {
    const tasks = ["One", "Two", "Three"].map((title, index) =>
      makeTask({ id: `task-${index}`, owner_id: ME, title }),
    );
    const server = taskServer(tasks);
    renderPage(<TasksPage />, { path: "/tasks", url: "/tasks" });
    const user = userEvent.setup();
    await screen.findByRole("link", { name: "Two" });
    expect(screen.queryByRole("link", { name: "Three" })).not.toBeInTheDocument();

    await user.click(screen.getByRole("button", { name: "Load more" }));

    expect(await screen.findByRole("link", { name: "Three" })).toBeInTheDocument();
    expect(within(screen.getByRole("list", { name: "Tasks" })).getAllByRole("listitem")).toHaveLength(3);
    expect(listQueries(server).at(-1)?.get("cursor")).toBe("2");
    expect(screen.queryByRole("button", { name: "Load more" })).not.toBeInTheDocument();
  });
});
