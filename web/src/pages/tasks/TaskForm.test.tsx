import { QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Task } from "../../api/types";
import { TaskForm, type Editable } from "./TaskForm";
import { taskKeys } from "./taskQueries";
import { fakeApi, json, makeTask, newQueryClient, problem } from "./testing";

const TASK_PATH = "/api/v1/tasks/64b000000000000000000001";
const BERLIN = "Europe/Berlin";

afterEach(() => {
  vi.unstubAllGlobals();
});

function renderForm(task: Task, editable: Editable = "all") {
  const queryClient = newQueryClient();
  queryClient.setQueryData(taskKeys.detail(task.id), task);
  const form = (current: Task) => (
    <QueryClientProvider client={queryClient}>
      <TaskForm task={current} timeZone={BERLIN} editable={editable} />
    </QueryClientProvider>
  );
  const view = render(form(task));
  return { queryClient, rerender: (next: Task) => view.rerender(form(next)) };
}

describe("TaskForm", () => {
  it("saves only the changed fields, on condition of the version it started from", async () => {
    const task = makeTask({ version: 3 });
    const server = fakeApi().on("PATCH", TASK_PATH, async (request) =>
      json({ ...task, ...(await request.json()), version: 4 }),
    );
    const { queryClient } = renderForm(task);
    const user = userEvent.setup();

    await user.clear(screen.getByRole("textbox", { name: "Title" }));
    await user.type(screen.getByRole("textbox", { name: "Title" }), "Write the summary");
    await user.selectOptions(screen.getByRole("combobox", { name: "Priority" }), "high");
    await user.type(screen.getByLabelText("Due date"), "2026-07-20T17:30");
    await user.click(screen.getByRole("button", { name: "Save changes" }));

    expect(await screen.findByText("Changes saved.")).toBeInTheDocument();
    const [patch] = server.sent("PATCH", TASK_PATH);
    expect(patch?.headers.get("If-Match")).toBe('"3"');
    expect(await patch?.json()).toEqual({
      title: "Write the summary",
      priority: "high",
      due_at: "2026-07-20T15:30:00.000Z",
    });
    expect(queryClient.getQueryData<Task>(taskKeys.detail(task.id))?.version).toBe(4);
  });

  it("on 412 shows the conflict, and after 'Reload task' the server's values", async () => {
    const task = makeTask({ version: 3 });
    const onServer = makeTask({
      version: 5,
      title: "Renamed elsewhere",
      description: "Rewritten elsewhere",
      priority: "urgent",
    });
    const server = fakeApi()
      .on("PATCH", TASK_PATH, () => problem(412, "Precondition Failed", { detail: "version mismatch" }))
      .on("GET", TASK_PATH, () => json(onServer));
    const { queryClient } = renderForm(task);
    const user = userEvent.setup();

    await user.type(screen.getByRole("textbox", { name: "Description" }), " and charts");
    await user.click(screen.getByRole("button", { name: "Save changes" }));

    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("This task was changed elsewhere");
    expect(server.sent("PATCH", TASK_PATH)[0]?.headers.get("If-Match")).toBe('"3"');
    // The edit is still there until the user chooses to reload.
    expect(screen.getByRole("textbox", { name: "Description" })).toHaveValue(
      "Quarterly numbers and charts",
    );

    await user.click(screen.getByRole("button", { name: "Reload task" }));

    await waitFor(() => {
      expect(screen.getByRole("textbox", { name: "Title" })).toHaveValue("Renamed elsewhere");
    });
    expect(screen.getByRole("textbox", { name: "Description" })).toHaveValue("Rewritten elsewhere");
    expect(screen.getByRole("combobox", { name: "Priority" })).toHaveValue("urgent");
    expect(screen.queryByRole("button", { name: "Reload task" })).not.toBeInTheDocument();
    expect(queryClient.getQueryData<Task>(taskKeys.detail(task.id))).toEqual(onServer);

    // The next save is conditional on the reloaded version.
    await user.selectOptions(screen.getByRole("combobox", { name: "Status" }), "done");
    await user.click(screen.getByRole("button", { name: "Save changes" }));
    await waitFor(() => {
      expect(server.sent("PATCH", TASK_PATH)).toHaveLength(2);
    });
    const second = server.sent("PATCH", TASK_PATH)[1];
    expect(second?.headers.get("If-Match")).toBe('"5"');
    expect(await second?.json()).toEqual({ status: "done" });
  });

  it("on 422 shows each field's error next to the field", async () => {
    fakeApi().on("PATCH", TASK_PATH, () =>
      problem(422, "Unprocessable Content", {
        detail: "The request is not valid.",
        errors: [
          { loc: ["body", "title"], msg: "String should have at least 1 character" },
          { loc: ["body", "tags", 0], msg: "Tags have at most 32 characters" },
        ],
      }),
    );
    renderForm(makeTask());
    const user = userEvent.setup();

    await user.type(screen.getByRole("textbox", { name: "Tags" }), "a-very-long-tag-that-goes-on-and-on");
    await user.type(screen.getByRole("textbox", { name: "Title" }), "!");
    await user.click(screen.getByRole("button", { name: "Save changes" }));

    const title = screen.getByRole("textbox", { name: "Title" });
    await waitFor(() => {
      expect(title).toHaveAttribute("aria-invalid", "true");
    });
    expect(title).toHaveAccessibleDescription("String should have at least 1 character");
    expect(screen.getByRole("textbox", { name: "Tags" })).toHaveAccessibleDescription(
      expect.stringContaining("Tags have at most 32 characters"),
    );
    expect(screen.getByRole("textbox", { name: "Description" })).not.toHaveAttribute("aria-invalid");
    // Every error has a place next to its field: no general alert repeats them.
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("lets an assignee change the status only, with the other fields shown read-only", async () => {
    const task = makeTask({ tags: ["home"], due_at: "2026-07-15T07:00:00.000Z" });
    const server = fakeApi().on("PATCH", TASK_PATH, () => json({ ...task, status: "in_progress", version: 2 }));
    renderForm(task, "status");
    const user = userEvent.setup();

    expect(screen.queryByRole("textbox")).not.toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Priority" })).not.toBeInTheDocument();
    expect(screen.getByText("Quarterly numbers")).toBeInTheDocument();
    expect(screen.getByText("home")).toBeInTheDocument();

    await user.selectOptions(screen.getByRole("combobox", { name: "Status" }), "in_progress");
    await user.click(screen.getByRole("button", { name: "Save changes" }));

    await screen.findByText("Changes saved.");
    expect(await server.sent("PATCH", TASK_PATH)[0]?.json()).toEqual({ status: "in_progress" });
  });

  it("shows an assignee the owner's newer edits at once and saves only the status", async () => {
    const task = makeTask({ version: 1 });
    const server = fakeApi().on("PATCH", TASK_PATH, () => json({ ...task, status: "done", version: 3 }));
    const { rerender } = renderForm(task, "status");
    const user = userEvent.setup();

    await user.selectOptions(screen.getByRole("combobox", { name: "Status" }), "done");
    rerender({ ...task, description: "Rewritten by the owner", version: 2 });

    expect(screen.getByText("Rewritten by the owner")).toBeInTheDocument();
    expect(screen.queryByText(/changed elsewhere/)).not.toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Save changes" }));
    await screen.findByText("Changes saved.");
    const [patch] = server.sent("PATCH", TASK_PATH);
    expect(patch?.headers.get("If-Match")).toBe('"2"');
    expect(await patch?.json()).toEqual({ status: "done" });
  });

  it("offers no edits to someone who may only look", () => {
    renderForm(makeTask({ status: "done" }), "none");
    expect(screen.queryByRole("combobox")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Save changes" })).not.toBeInTheDocument();
    expect(screen.getByText("Done")).toBeInTheDocument();
  });

  it("takes a newer version that left its fields alone as the base of the save", async () => {
    const task = makeTask({ version: 1 });
    const server = fakeApi().on("PATCH", TASK_PATH, () => json({ ...task, version: 3 }));
    const { rerender } = renderForm(task);
    const user = userEvent.setup();

    await user.type(screen.getByRole("textbox", { name: "Description" }), "!");
    rerender({ ...task, assignee_id: "user-bob", version: 2 });
    await user.click(screen.getByRole("button", { name: "Save changes" }));

    await screen.findByText("Changes saved.");
    expect(screen.queryByText(/changed elsewhere/)).not.toBeInTheDocument();
    const [patch] = server.sent("PATCH", TASK_PATH);
    expect(patch?.headers.get("If-Match")).toBe('"2"');
    expect(await patch?.json()).toEqual({ description: "Quarterly numbers!" });
  });

  it("never changes its fields under the user, but says a newer version exists", async () => {
    const task = makeTask({ version: 1 });
    const newer = { ...task, title: "Renamed elsewhere", version: 2 };
    fakeApi()
      .on("PATCH", TASK_PATH, () => problem(412, "Precondition Failed"))
      .on("GET", TASK_PATH, () => json(newer));
    const { rerender } = renderForm(task);
    const user = userEvent.setup();

    rerender(newer);

    expect(screen.getAllByRole("status")[0]).toHaveTextContent("This task was changed elsewhere");
    expect(screen.getByRole("textbox", { name: "Title" })).toHaveValue("Write the report");
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();

    await user.type(screen.getByRole("textbox", { name: "Title" }), " now");
    await user.click(screen.getByRole("button", { name: "Save changes" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Your changes were not saved.");
    expect(screen.getAllByRole("button", { name: "Reload task" })).toHaveLength(1);

    await user.click(screen.getByRole("button", { name: "Reload task" }));
    await waitFor(() => {
      expect(screen.getByRole("textbox", { name: "Title" })).toHaveValue("Renamed elsewhere");
    });
    expect(screen.queryByText(/changed elsewhere/)).not.toBeInTheDocument();
  });
});
