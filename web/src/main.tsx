import "./styles.css";

import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RouterProvider } from "react-router";

import { ApiError } from "./api/problem";
import { LiveProvider } from "./live/LiveProvider";
import { createAppRouter } from "./router";
import { SessionProvider } from "./session/SessionProvider";

const MAX_RETRIES = 2;

/** Retry what may pass (network, 5xx, 429); a 4xx answer would only come back the same. */
function shouldRetry(failures: number, error: unknown): boolean {
  const passing = !(error instanceof ApiError) || error.status >= 500 || error.status === 429;
  return passing && failures < MAX_RETRIES;
}

const queryClient = new QueryClient({
  defaultOptions: {
    queries: { retry: shouldRetry, staleTime: 30_000 },
  },
});

const root = document.getElementById("root");
if (root === null) {
  throw new Error("index.html has no #root element");
}

createRoot(root).render(
  <StrictMode>
    <QueryClientProvider client={queryClient}>
      <SessionProvider>
        <LiveProvider>
          <RouterProvider router={createAppRouter()} />
        </LiveProvider>
      </SessionProvider>
    </QueryClientProvider>
  </StrictMode>,
);
