import type { ReactNode } from "react";
import { Navigate, Outlet, useLocation } from "react-router";

import { useSession } from "../session/SessionProvider";
import { Loading } from "./Loading";
import { returnPath } from "./RequireAuth";

/**
 * For the login and sign-up pages: a signed-in visitor goes on to the page that sent them here
 * (or the task list), which is also how a successful login leaves the page.
 */
export function GuestOnly({ children }: { children?: ReactNode }) {
  const { status } = useSession();
  const location = useLocation();
  if (status === "loading") {
    return <Loading label="Checking your session…" />;
  }
  if (status === "authenticated") {
    return <Navigate to={returnPath(location.state)} replace />;
  }
  return <>{children ?? <Outlet />}</>;
}
