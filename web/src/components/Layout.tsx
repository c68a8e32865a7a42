import { useEffect, useState, type MouseEvent, type ReactNode } from "react";
import { Link, NavLink, Outlet, useNavigate } from "react-router";

import { useLiveStatus } from "../live/LiveProvider";
import { useSession } from "../session/SessionProvider";
import { NotificationBadge } from "./NotificationBadge";
import { APP_NAME } from "./useRouteFocus";

/** The signed-in frame: header with the main navigation, then the page in <main>. */
export function Layout() {
  const { user, logout } = useSession();
  const navigate = useNavigate();
  const isAdmin = user?.role === "admin";

  async function logOut() {
    await logout();
    await navigate("/login", { replace: true });
  }

  return (
    <Frame
      header={
        <>
          <nav aria-label="Main" className="main-nav">
            <ul>
              <li>
                <NavLink to="/tasks">Tasks</NavLink>
              </li>
              <li>
                <NavLink to="/notifications">
                  <NotificationBadge label="Notifications" />
                </NavLink>
              </li>
              <li>
                <NavLink to="/settings">Settings</NavLink>
              </li>
              {isAdmin ? (
                <>
                  <li>
                    <NavLink to="/admin/users">Users</NavLink>
                  </li>
                  <li>
                    <NavLink to="/admin/analytics">Analytics</NavLink>
                  </li>
                </>
              ) : null}
            </ul>
          </nav>
          <div className="account">
            {user ? <span className="account-email">{user.email}</span> : null}
            <button type="button" className="btn btn-link" onClick={() => void logOut()}>
              Log out
            </button>
          </div>
        </>
      }
    >
      <LiveNotice />
      <Outlet />
    </Frame>
  );
}

/** The frame of the pages for visitors (log in, sign up, password reset, not found). */
export function PublicLayout() {
  return (
    <Frame>
      <div className="public-page">
        <Outlet />
      </div>
    </Frame>
  );
}

function Frame({ header, children }: { header?: ReactNode; children: ReactNode }) {
  return (
    <div className="app">
      <a className="skip-link" href="#main" onClick={skipToContent}>
        Skip to content
      </a>
      <header className="app-header">
        <div className="app-header-inner">
          <Link to="/" className="brand">
            {APP_NAME}
          </Link>
          {header}
        </div>
      </header>
      <main id="main" tabIndex={-1} className="app-main">
        {children}
      </main>
    </div>
  );
}

/** Moves focus without touching the URL (a "#main" hash would count as a navigation). */
function skipToContent(event: MouseEvent<HTMLAnchorElement>) {
  event.preventDefault();
  document.getElementById("main")?.focus();
}

/** A drop shorter than this (a routine reconnect) goes unmentioned. */
const LIVE_NOTICE_DELAY_MS = 3_000;

/** Says so while live updates are interrupted (the socket reconnects on its own). */
function LiveNotice() {
  const status = useLiveStatus();
  const [paused, setPaused] = useState(false);
  useEffect(() => {
    if (status !== "closed") {
      setPaused(false);
      return;
    }
    const timer = window.setTimeout(() => setPaused(true), LIVE_NOTICE_DELAY_MS);
    return () => window.clearTimeout(timer);
  }, [status]);
  return (
    <p className="live-notice" role="status">
      {paused ? "Live updates are paused. Reconnecting…" : ""}
    </p>
  );
}
