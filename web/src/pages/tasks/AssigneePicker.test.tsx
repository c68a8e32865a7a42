import { QueryClientProvider, useQuery } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Task } from "../../api/types";
import { AssigneePicker } from "./AssigneePicker";
import { taskDetailQuery, taskKeys } from "./taskQueries";
import { fakeApi, json, makeTask, newQueryClient, problem } from "./testing";

const TASK_PATH = "/api/v1/tasks/64b000000000000000000001";
const LOOKUP_PATH = "/api/v1/users/lookup";

afterEach(() => {
  vi.unstubAllGlobals();
});

/** The picker as the task page uses it: fed from the task's cache entry. */
function CachedPicker({ taskId }: { taskId: string }) {
  const task = useQuery({ ...taskDetailQuery(taskId), staleTime: Infinity });
  return task.data === undefined ? null : <AssigneePicker task={task.data} canEdit />;
}

function renderPicker(task: Task) {
  const queryClient = newQueryClient();
  queryClient.setQueryData(taskKeys.detail(task.id), task);
  render(
    <QueryClientProvider client={queryClient}>
      <CachedPicker taskId={task.id} />
    </QueryClientProvider>,
  );
  return queryClient;
}

describe("AssigneePicker", () => {
  it("assigns the user found by exact email and names them", async () => {
    const task = makeTask({ version: 2 });
    const server = fakeApi()
      .on("GET", LOOKUP_PATH, () => json({ id: "user-bob", name: "Bob Builder" }))
      .on("PATCH", TASK_PATH, () => json({ ...task, assignee_id: "user-bob", version: 3 }));
    const queryClient = renderPicker(task);
    const user = userEvent.setup();
    expect(screen.getByText("Not assigned.")).toBeInTheDocument();

    await user.type(screen.getByRole("textbox", { name: "Assignee email" }), " Bob@Example.com ");
    await user.click(screen.getByRole("button", { name: "Assign" }));

    expect(await screen.findByText("Assigned to Bob Builder")).toBeInTheDocument();
    const lookup = server.sent("GET", LOOKUP_PATH)[0];
    expect(new URL(lookup?.url ?? "").searchParams.get("email")).toBe("Bob@Example.com");
    const patch = server.sent("PATCH", TASK_PATH)[0];
    expect(patch?.headers.get("If-Match")).toBe('"2"');
    expect(await patch?.json()).toEqual({ assignee_id: "user-bob" });
    expect(queryClient.getQueryData<Task>(taskKeys.detail(task.id))?.assignee_id).toBe("user-bob");
    expect(screen.getByRole("textbox", { name: "Assignee email" })).toHaveValue("");
  });

  it("says so when no active user has that email, and changes nothing", async () => {
    const server = fakeApi().on("GET", LOOKUP_PATH, () => problem(404, "Not Found"));
    renderPicker(makeTask());
    const user = userEvent.setup();

    await user.type(screen.getByRole("textbox", { name: "Assignee email" }), "nobody@example.com");
    await user.click(screen.getByRole("button", { name: "Assign" }));

    const field = screen.getByRole("textbox", { name: "Assignee email" });
    await waitFor(() => {
      expect(field).toHaveAccessibleDescription("No active user with that email");
    });
    expect(field).toHaveAttribute("aria-invalid", "true");
    expect(server.sent("PATCH", TASK_PATH)).toHaveLength(0);
    expect(screen.getByText("Not assigned.")).toBeInTheDocument();
  });

  it("unassigns", async () => {
    const task = makeTask({ assignee_id: "user-bob", version: 4 });
    const server = fakeApi().on("PATCH", TASK_PATH, () =>
      json({ ...task, assignee_id: null, version: 5 }),
    );
    renderPicker(task);
    const user = userEvent.setup();

    await user.click(screen.getByRole("button", { name: "Unassign" }));

    expect(await screen.findByText("Not assigned.")).toBeInTheDocument();
    expect(await server.sent("PATCH", TASK_PATH)[0]?.json()).toEqual({ assignee_id: null });
    expect(screen.queryByRole("button", { name: "Unassign" })).not.toBeInTheDocument();
  });

  it("reloads the task when it changed meanwhile", async () => {
    const task = makeTask({ version: 1 });
    const server = fakeApi()
      .on("GET", LOOKUP_PATH, () => json({ id: "user-bob", name: "Bob" }))
      .on("PATCH", TASK_PATH, () => problem(412, "Precondition Failed"))
      .on("GET", TASK_PATH, () => json({ ...task, version: 2 }));
    renderPicker(task);
    const user = userEvent.setup();

    await user.type(screen.getByRole("textbox", { name: "Assignee email" }), "bob@example.com");
    await user.click(screen.getByRole("button", { name: "Assign" }));

    expect(await screen.findByRole("alert")).toHaveTextContent("Someone changed the task meanwhile");
    await waitFor(() => {
      expect(server.sent("GET", TASK_PATH)).toHaveLength(1);
    });
  });
});
