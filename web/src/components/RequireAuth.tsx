import type { ReactNode } from "react";
import { Navigate, Outlet, useLocation, type Location } from "react-router";

import { useSession } from "../session/SessionProvider";
import { Loading } from "./Loading";

/** What the login page receives from a page that needed a session: where to go back to. */
export interface ReturnState {
  from: Pick<Location, "pathname" | "search" | "hash">;
}

/** Shows its content (or the child routes) to signed-in users; sends others to /login. */
export function RequireAuth({ children }: { children?: ReactNode }) {
  const { status } = useSession();
  const location = useLocation();
  if (status === "loading") {
    return (
      <main id="main" className="page-center">
        <Loading label="Checking your session…" />
      </main>
    );
  }
  if (status === "anonymous") {
    const state: ReturnState = { from: location };
    return <Navigate to="/login" state={state} replace />;
  }
  return <>{children ?? <Outlet />}</>;
}

/** Where to go after logging in: back to the page that asked, else the task list. */
export function returnPath(state: unknown): string {
  const from = (state as Partial<ReturnState> | null)?.from;
  const pathname = from?.pathname;
  // Only a path of this app: never "//host" (another site) nor the login page itself.
  const ours = typeof pathname === "string" && pathname.startsWith("/") && !pathname.startsWith("//");
  if (!ours || pathname === "/login") {
    return "/tasks";
  }
  return `${pathname}${from?.search ?? ""}${from?.hash ?? ""}`;
}
