import { useQuery } from "@tanstack/react-query";

import { api, unwrap } from "../api/client";

/** One page this large answers "how many unread" for the badge (beyond 99 it shows "99+"). */
const COUNTED = 100;
const SHOWN_MAX = 99;

export const unreadCountKey = ["notifications", "unread-count"] as const;

async function fetchUnreadCount(): Promise<string> {
  const page = unwrap(
    await api.GET("/api/v1/notifications", { params: { query: { unread: true, limit: COUNTED } } }),
  );
  const count = page.items.length;
  return count > SHOWN_MAX || page.next_cursor ? `${SHOWN_MAX}+` : String(count);
}

export interface NotificationBadgeProps {
  /** The visible text of the link the badge sits in. */
  label?: string;
}

/**
 * The Notifications link's content: its label and the unread count, seen as a badge and heard
 * as part of the link's name ("Notifications, 3 unread"); just the label when nothing is unread.
 * The spoken name is one visually hidden text: separate pieces would be joined with a space
 * before the comma, because a visually hidden element does not count as inline.
 */
export function NotificationBadge({ label = "Notifications" }: NotificationBadgeProps) {
  const { data: count } = useQuery({ queryKey: unreadCountKey, queryFn: fetchUnreadCount });
  if (count === undefined || count === "0") {
    return <>{label}</>;
  }
  return (
    <>
      <span aria-hidden="true">{label}</span>
      <span className="visually-hidden">{`${label}, ${count} unread`}</span>
      <span className="badge badge-count" aria-hidden="true" data-testid="unread-badge">
        {count}
      </span>
    </>
  );
}
