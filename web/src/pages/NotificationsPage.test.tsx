import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { RouterProvider, createMemoryRouter } from "react-router";
import type { Notification, NotificationPage } from "../api/types";
import { NotificationsPage } from "./NotificationsPage";

const fakeApi = vi.hoisted(() => ({ GET: vi.fn(), POST: vi.fn() }));

vi.mock("../api/client", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../api/client")>()),
  api: fakeApi,
}));

function notification(id: string, overrides: Partial<Notification> = {}): Notification {
  return {
    id,
    type: "task.assigned",
    title: `Notification ${id}`,
    body: "",
    task_id: null,
    read: false,
    created_at: new Date().toISOString(),
    ...overrides,
  };
}

function page(items: Notification[], next_cursor: string | null = null) {
  const body: NotificationPage = { items, next_cursor };
  return { data: body, response: new Response(JSON.stringify(body), { status: 200 }) };
}

/** The options of a list call: its query (20 a page), and an abort signal. */
function listQuery(query: { unread: true | undefined; cursor: string | undefined }) {
  return { params: { query: { ...query, limit: 20 } }, signal: expect.any(AbortSignal) };
}

const noContent = () => ({ response: new Response(null, { status: 204 }) });

function renderPage() {
  const queryClient = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  // The header badge's query: the page never renders it, but must invalidate it.
  queryClient.setQueryData(["notifications", "unread-count"], 2);
  const router = createMemoryRouter([{ path: "/notifications", element: <NotificationsPage /> }], {
    initialEntries: ["/notifications"],
  });
  render(
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return queryClient;
}

it("lists notifications with a link to the task", async () => {
  fakeApi.GET.mockResolvedValue(page([notification("n1", { task_id: "t1", title: "Assigned to you" })]));
  renderPage();

  const list = await screen.findByRole("list", { name: "Notifications" });
  expect(within(list).getByText("Assigned to you")).toBeInTheDocument();
  expect(within(list).getByRole("link", { name: "View task" })).toHaveAttribute("href", "/tasks/t1");
  expect(fakeApi.GET).toHaveBeenCalledWith("/api/v1/notifications", listQuery({ unread: undefined, cursor: undefined }));
});

it("marking one read posts it and invalidates every notification query, the badge's too", async () => {
  fakeApi.GET.mockResolvedValueOnce(page([notification("n1"), notification("n2", { read: true })]));
  fakeApi.GET.mockResolvedValue(page([notification("n1", { read: true }), notification("n2", { read: true })]));
  fakeApi.POST.mockResolvedValue(noContent());
  const queryClient = renderPage();
  const invalidate = vi.spyOn(queryClient, "invalidateQueries");

  await userEvent.click(await screen.findByRole("button", { name: "Mark as read" }));

  expect(fakeApi.POST).toHaveBeenCalledWith("/api/v1/notifications/{id}/read", { params: { path: { id: "n1" } } });
  await waitFor(() => expect(invalidate).toHaveBeenCalledWith({ queryKey: ["notifications"] }));
  expect(queryClient.getQueryState(["notifications", "unread-count"])?.isInvalidated).toBe(true);
  // The list refetched and the item no longer offers the button.
  await waitFor(() => expect(screen.queryByRole("button", { name: "Mark as read" })).not.toBeInTheDocument());
  expect(fakeApi.GET).toHaveBeenCalledTimes(2);
});

it("mark all as read posts read-all and invalidates the notification queries", async () => {
  fakeApi.GET.mockResolvedValue(page([notification("n1")]));
  fakeApi.POST.mockResolvedValue(noContent());
  const queryClient = renderPage();
  await screen.findByRole("list", { name: "Notifications" });

  await userEvent.click(screen.getByRole("button", { name: "Mark all as read" }));

  expect(fakeApi.POST).toHaveBeenCalledWith("/api/v1/notifications/read-all");
  await waitFor(() => expect(queryClient.getQueryState(["notifications", "unread-count"])?.isInvalidated).toBe(true));
  expect(await screen.findByText("All notifications marked as read.")).toBeInTheDocument();
});

it("the unread toggle asks for unread notifications only and says when there are none", async () => {
  fakeApi.GET.mockResolvedValueOnce(page([notification("n1", { read: true })]));
  fakeApi.GET.mockResolvedValue(page([]));
  renderPage();
  await screen.findByRole("list", { name: "Notifications" });

  await userEvent.click(screen.getByRole("checkbox", { name: "Unread only" }));

  expect(await screen.findByText("No unread notifications.")).toBeInTheDocument();
  expect(fakeApi.GET).toHaveBeenLastCalledWith("/api/v1/notifications", listQuery({ unread: true, cursor: undefined }));
});

it("load more fetches the next page with the cursor and appends it", async () => {
  fakeApi.GET.mockResolvedValueOnce(page([notification("n1")], "cursor-2"));
  fakeApi.GET.mockResolvedValueOnce(page([notification("n2")]));
  renderPage();

  await userEvent.click(await screen.findByRole("button", { name: "Load more" }));

  const list = screen.getByRole("list", { name: "Notifications" });
  await waitFor(() => expect(within(list).getAllByRole("listitem")).toHaveLength(2));
  expect(fakeApi.GET).toHaveBeenLastCalledWith("/api/v1/notifications", listQuery({ unread: undefined, cursor: "cursor-2" }));
  expect(screen.queryByRole("button", { name: "Load more" })).not.toBeInTheDocument();
});
