import { useInfiniteQuery, useMutation, useQueryClient } from "@tanstack/react-query";
import { formatDistanceToNow } from "date-fns";
import { useId, useState } from "react";
import { Link } from "react-router";
import { api, unwrap } from "../api/client";
import type { Notification } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { Loading } from "../components/Loading";
import "./NotificationsPage.css";

const PAGE_SIZE = 20;
/** Every notification query (the lists and the header badge's unread count) starts with this. */
const NOTIFICATIONS_KEY = ["notifications"] as const;

export function NotificationsPage() {
  const unreadOnlyId = useId();
  const [unreadOnly, setUnreadOnly] = useState(false);
  const notifications = useInfiniteQuery({
    queryKey: [...NOTIFICATIONS_KEY, "list", { unread: unreadOnly }],
    queryFn: async ({ pageParam, signal }) =>
      unwrap(
        await api.GET("/api/v1/notifications", {
          params: { query: { unread: unreadOnly || undefined, limit: PAGE_SIZE, cursor: pageParam ?? undefined } },
          signal,
        }),
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (page) => page.next_cursor,
  });
  const markAll = useMarkAllRead();
  const items = notifications.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <div className="notifications-page stack">
      <div className="notifications-header">
        <h1>Notifications</h1>
        <div className="notifications-controls">
          <div className="checkbox">
            <input
              id={unreadOnlyId}
              type="checkbox"
              checked={unreadOnly}
              onChange={(event) => setUnreadOnly(event.target.checked)}
            />
            <label htmlFor={unreadOnlyId}>Unread only</label>
          </div>
          <button type="button" className="btn" disabled={markAll.isPending} onClick={() => markAll.mutate()}>
            Mark all as read
          </button>
        </div>
      </div>
      {markAll.isError && <ErrorMessage error={markAll.error} />}
      <p role="status" className="visually-hidden">
        {markAll.isSuccess ? "All notifications marked as read." : ""}
      </p>

      {notifications.isPending ? (
        <Loading label="Loading notifications" />
      ) : !notifications.data ? (
        <ErrorMessage error={notifications.error} onRetry={() => void notifications.refetch()} />
      ) : items.length === 0 ? (
        <p className="empty">{unreadOnly ? "No unread notifications." : "No notifications yet."}</p>
      ) : (
        <ul aria-label="Notifications" className="notification-list">
          {items.map((notification) => (
            <NotificationItem key={notification.id} notification={notification} />
          ))}
        </ul>
      )}
      {notifications.data && notifications.isError && <ErrorMessage error={notifications.error} />}
      {notifications.isFetchingNextPage && <Loading label="Loading more notifications" />}
      {notifications.hasNextPage && (
        <button
          type="button"
          className="btn load-more"
          // A second click while a page loads waits for it instead of fetching it again.
          onClick={() => void notifications.fetchNextPage({ cancelRefetch: false })}
        >
          Load more
        </button>
      )}
    </div>
  );
}

function NotificationItem({ notification }: { notification: Notification }) {
  const titleId = useId();
  const markRead = useMarkRead();
  const created = new Date(notification.created_at);

  return (
    <li className={notification.read ? "card notification" : "card notification unread"}>
      <div className="notification-text">
        <p className="notification-title" id={titleId}>
          {!notification.read && <span className="badge">Unread</span>} {notification.title}
        </p>
        {notification.body && <p>{notification.body}</p>}
        <p className="muted">
          <time dateTime={notification.created_at} title={created.toLocaleString()}>
            {formatDistanceToNow(created, { addSuffix: true })}
          </time>
        </p>
      </div>
      <div className="notification-actions">
        {notification.task_id && (
          <Link to={`/tasks/${encodeURIComponent(notification.task_id)}`} aria-describedby={titleId}>
            View task
          </Link>
        )}
        {!notification.read && (
          <button
            type="button"
            className="btn"
            aria-describedby={titleId}
            disabled={markRead.isPending}
            onClick={() => markRead.mutate(notification.id)}
          >
            Mark as read
          </button>
        )}
        {markRead.isError && <ErrorMessage error={markRead.error} />}
      </div>
    </li>
  );
}

/** Marks one notification read, then refetches every notification query (lists and badge). */
export function useMarkRead() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async (id: string) =>
      unwrap(await api.POST("/api/v1/notifications/{id}/read", { params: { path: { id } } })),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: NOTIFICATIONS_KEY }),
  });
}

/** Marks all the caller's notifications read, then refetches every notification query. */
export function useMarkAllRead() {
  const queryClient = useQueryClient();
  return useMutation({
    mutationFn: async () => unwrap(await api.POST("/api/v1/notifications/read-all")),
    onSuccess: () => queryClient.invalidateQueries({ queryKey: NOTIFICATIONS_KEY }),
  });
}
