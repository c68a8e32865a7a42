import type { ReactNode } from "react";
import { Outlet } from "react-router";

import { ForbiddenPage } from "../pages/ForbiddenPage";
import { useSession } from "../session/SessionProvider";

/** Shows its content (or the child routes) to admins; anyone else sees "Not allowed" in place. */
export function RequireAdmin({ children }: { children?: ReactNode }) {
  const { user } = useSession();
  if (user?.role !== "admin") {
    return <ForbiddenPage />;
  }
  return <>{children ?? <Outlet />}</>;
}
