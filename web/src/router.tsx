import { lazy, Suspense } from "react";
import { createBrowserRouter, Navigate, Outlet, type RouteObject } from "react-router";

import { GuestOnly } from "./components/GuestOnly";
import { Layout, PublicLayout } from "./components/Layout";
import { Loading } from "./components/Loading";
import { RequireAdmin } from "./components/RequireAdmin";
import { RequireAuth } from "./components/RequireAuth";
import { RouteError } from "./components/RouteError";
import { useRouteFocus } from "./components/useRouteFocus";
import { AdminUsersPage } from "./pages/admin/AdminUsersPage";
import { ForgotPasswordPage } from "./pages/auth/ForgotPasswordPage";
import { LoginPage } from "./pages/auth/LoginPage";
import { RegisterPage } from "./pages/auth/RegisterPage";
import { ResetPasswordPage } from "./pages/auth/ResetPasswordPage";
import { NotFoundPage } from "./pages/NotFoundPage";
import { NotificationsPage } from "./pages/NotificationsPage";
import { SettingsPage } from "./pages/SettingsPage";
import { TaskDetailPage } from "./pages/tasks/TaskDetailPage";
import { TasksPage } from "./pages/tasks/TasksPage";

// The charts library is large and only admins see it: load it with its page.
const AdminAnalyticsPage = lazy(() =>
  import("./pages/admin/AdminAnalyticsPage").then((module) => ({ default: module.AdminAnalyticsPage })),
);

/** Every page shares this root: it names the document and moves focus on navigation. */
function AppRoot() {
  useRouteFocus();
  return <Outlet />;
}

export const routes: RouteObject[] = [
  {
    element: <AppRoot />,
    errorElement: <RouteError standalone />,
    children: [
      {
        element: <PublicLayout />,
        children: [
          {
            element: <GuestOnly />,
            children: [
              { path: "/login", element: <LoginPage /> },
              { path: "/register", element: <RegisterPage /> },
            ],
          },
          { path: "/forgot-password", element: <ForgotPasswordPage /> },
          { path: "/reset-password", element: <ResetPasswordPage /> },
          { path: "*", element: <NotFoundPage /> },
        ],
      },
      { path: "/", element: <Navigate to="/tasks" replace /> },
      {
        element: (
          <RequireAuth>
            <Layout />
          </RequireAuth>
        ),
        children: [
          {
            // A page that fails to render shows the error inside the frame, navigation intact.
            errorElement: <RouteError />,
            children: [
              { path: "/tasks", element: <TasksPage /> },
              { path: "/tasks/:taskId", element: <TaskDetailPage /> },
              { path: "/notifications", element: <NotificationsPage /> },
              { path: "/settings", element: <SettingsPage /> },
              {
                element: <RequireAdmin />,
                children: [
                  { path: "/admin/users", element: <AdminUsersPage /> },
                  {
                    path: "/admin/analytics",
                    element: (
                      <Suspense fallback={<Loading label="Loading analytics…" />}>
                        <AdminAnalyticsPage />
                      </Suspense>
                    ),
                  },
                ],
              },
            ],
          },
        ],
      },
    ],
  },
];

export function createAppRouter() {
  return createBrowserRouter(routes);
}
