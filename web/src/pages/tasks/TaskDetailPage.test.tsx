import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";

import type { Attachment, Task } from "../../api/types";
import { makeProfile } from "../../test/fixtures";
import { TaskDetailPage } from "./TaskDetailPage";
import { fakeApi, json, makeTask, problem, renderPage, type FakeApi } from "./testing";

const ME = "user-me";
const TASK_ID = "64b000000000000000000001";
const TASK_PATH = `/api/v1/tasks/${TASK_ID}`;
const ATTACHMENTS_PATH = `${TASK_PATH}/attachments`;

vi.mock("../../session/SessionProvider", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../session/SessionProvider")>()),
  useSession: () => ({
    status: "authenticated",
    user: { id: ME, email: "me@example.com", role: "user", active: true, created_at: "" },
  }),
}));

const PROFILE = makeProfile({ id: ME, email: "me@example.com", name: "Mia", timezone: "America/New_York" });

const PLAN: Attachment = {
  id: "att-1",
  filename: "plan.pdf",
  content_type: "application/pdf",
  size: 2048,
  sha256: "0".repeat(64),
  created_at: "2026-07-01T09:00:00.000Z",
};

afterEach(() => {
  vi.unstubAllGlobals();
});

function taskServer(task: Task, attachments: Attachment[] = []): FakeApi {
  return fakeApi()
    .on("GET", "/api/v1/users/me", () => json(PROFILE))
    .on("GET", TASK_PATH, () => json(task))
    .on("GET", ATTACHMENTS_PATH, () => json(attachments));
}

function renderTask() {
  return renderPage(<TaskDetailPage />, { path: "/tasks/:taskId", url: `/tasks/${TASK_ID}` });
}

describe("TaskDetailPage", () => {
  it("shows its owner the edit form, due date in the profile's zone", async () => {
    taskServer(makeTask({ owner_id: ME, due_at: "2026-07-15T13:00:00.000Z" }));
    renderTask();

    expect(await screen.findByRole("heading", { level: 1, name: "Write the report" })).toBeInTheDocument();
    expect(screen.getByRole("textbox", { name: "Title" })).toHaveValue("Write the report");
    // 13:00 UTC is 09:00 in New York in July.
    expect(screen.getByLabelText("Due date")).toHaveValue("2026-07-15T09:00");
    expect(screen.getByRole("textbox", { name: "Assignee email" })).toBeInTheDocument();
    expect(screen.getByLabelText("Attach a file")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Delete task" })).toBeInTheDocument();
  });

  it("offers its assignee the status only", async () => {
    taskServer(makeTask({ owner_id: "someone-else", assignee_id: ME }), [PLAN]);
    renderTask();

    expect(await screen.findByRole("combobox", { name: "Status" })).toBeInTheDocument();
    expect(screen.queryByRole("textbox", { name: "Title" })).not.toBeInTheDocument();
    expect(screen.queryByRole("combobox", { name: "Priority" })).not.toBeInTheDocument();
    expect(screen.queryByRole("textbox", { name: "Assignee email" })).not.toBeInTheDocument();
    expect(screen.queryByLabelText("Attach a file")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Delete task" })).not.toBeInTheDocument();
    expect(screen.getByText("Assigned to Mia (you)")).toBeInTheDocument();
    expect(await screen.findByRole("button", { name: "Download plan.pdf" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Delete plan.pdf" })).not.toBeInTheDocument();
  });

  it("deletes the task after confirmation, then goes to the list", async () => {
    const server = taskServer(makeTask({ owner_id: ME })).on(
      "DELETE",
      TASK_PATH,
      () => new Response(null, { status: 204 }),
    );
    const { router } = renderTask();
    const user = userEvent.setup();

    await user.click(await screen.findByRole("button", { name: "Delete task" }));
    expect(server.sent("DELETE", TASK_PATH)).toHaveLength(0);
    expect(screen.getByRole("button", { name: "Cancel" })).toHaveFocus();
    await user.click(screen.getByRole("button", { name: "Yes, delete task" }));

    await waitFor(() => {
      expect(router.state.location.pathname).toBe("/tasks");
    });
    expect(server.sent("DELETE", TASK_PATH)).toHaveLength(1);
  });

  it("says the task is not found on 404", async () => {
    fakeApi()
      .on("GET", "/api/v1/users/me", () => json(PROFILE))
      .on("GET", TASK_PATH, () => problem(404, "Not Found"));
    renderTask();

    expect(await screen.findByRole("heading", { level: 1, name: "Task not found" })).toBeInTheDocument();
  });

  describe("attachments", () => {
    it("says a file over the limit is too large", async () => {
      const server = taskServer(makeTask({ owner_id: ME })).on("POST", ATTACHMENTS_PATH, () =>
        problem(413, "Content Too Large", { detail: "The file is larger than 10485760 bytes." }),
      );
      renderTask();
      const user = userEvent.setup();

      await user.upload(
        await screen.findByLabelText("Attach a file"),
        new File(["x".repeat(64)], "huge.bin", { type: "application/octet-stream" }),
      );

      expect(await screen.findByRole("alert")).toHaveTextContent(
        "File is larger than the limit: huge.bin was not attached.",
      );
      expect(server.sent("POST", ATTACHMENTS_PATH)).toHaveLength(1);
    });

    it("uploads a file and lists it", async () => {
      const attachments: Attachment[] = [];
      taskServer(makeTask({ owner_id: ME }), attachments).on("POST", ATTACHMENTS_PATH, () => {
        attachments.push(PLAN);
        return json(PLAN, 201);
      });
      renderTask();
      const user = userEvent.setup();
      expect(await screen.findByText("No attachments.")).toBeInTheDocument();

      await user.upload(
        screen.getByLabelText("Attach a file"),
        new File(["%PDF"], "plan.pdf", { type: "application/pdf" }),
      );

      expect(await screen.findByText("Uploaded plan.pdf.")).toBeInTheDocument();
      expect(await screen.findByRole("button", { name: "Download plan.pdf" })).toBeInTheDocument();
      expect(screen.getByText(/2 KiB/)).toBeInTheDocument();
    });

    it("deletes an attachment after confirmation", async () => {
      const attachments = [PLAN];
      const server = taskServer(makeTask({ owner_id: ME }), attachments).on(
        "DELETE",
        `${ATTACHMENTS_PATH}/att-1`,
        () => {
          attachments.pop();
          return new Response(null, { status: 204 });
        },
      );
      renderTask();
      const user = userEvent.setup();

      await user.click(await screen.findByRole("button", { name: "Delete plan.pdf" }));
      await user.click(screen.getByRole("button", { name: "Yes, delete it" }));

      expect(await screen.findByText("No attachments.")).toBeInTheDocument();
      expect(server.sent("DELETE", `${ATTACHMENTS_PATH}/att-1`)).toHaveLength(1);
    });
  });
});
