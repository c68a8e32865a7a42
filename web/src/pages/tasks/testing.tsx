/**
 * Test helpers for the task pages: a fake API behind `fetch` (the real typed client runs
 * against it, headers and all), and a render with react-query and a router.
 */
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render } from "@testing-library/react";
import type { ReactElement } from "react";
import { createMemoryRouter, RouterProvider, type RouteObject } from "react-router";
import { vi } from "vitest";

import type { Task } from "../../api/types";

type Handler = (request: Request, match: RegExpExecArray) => Response | Promise<Response>;

interface Route {
  method: string;
  path: RegExp;
  handler: Handler;
}

export interface FakeApi {
  /** Answer `method` requests whose path (without the query) matches `path` exactly. */
  on(method: string, path: string | RegExp, handler: Handler): FakeApi;
  /** Every request received, in order (bodies still readable). */
  requests: Request[];
  /** The requests for `method` and a path matching `path`. */
  sent(method: string, path: string | RegExp): Request[];
}

function pathPattern(path: string | RegExp): RegExp {
  if (path instanceof RegExp) {
    return new RegExp(`^${path.source}$`);
  }
  return new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`);
}

/** Stubs the global `fetch` with a fake API; unanswered requests get a 404 problem. */
export function fakeApi(): FakeApi {
  const routes: Route[] = [];
  const requests: Request[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = input instanceof Request ? input : new Request(input, init);
      requests.push(request.clone());
      const { pathname } = new URL(request.url);
      for (const route of routes) {
        const match = route.path.exec(pathname);
        if (route.method === request.method && match !== null) {
          return route.handler(request, match);
        }
      }
      return problem(404, "Not Found");
    }),
  );
  const api: FakeApi = {
    on(method, path, handler) {
      routes.unshift({ method, path: pathPattern(path), handler });
      return api;
    },
    requests,
    sent(method, path) {
      const pattern = pathPattern(path);
      return requests.filter(
        (request) => request.method === method && pattern.test(new URL(request.url).pathname),
      );
    },
  };
  return api;
}

export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

export function problem(
  status: number,
  title: string,
  extra: { detail?: string; errors?: { loc: (string | number)[]; msg: string }[] } = {},
): Response {
  return new Response(JSON.stringify({ type: "about:blank", title, status, ...extra }), {
    status,
    headers: { "Content-Type": "application/problem+json" },
  });
}

export function makeTask(overrides: Partial<Task> = {}): Task {
  return {
    id: "64b000000000000000000001",
    owner_id: "owner-1",
    assignee_id: null,
    title: "Write the report",
    description: "Quarterly numbers",
    status: "todo",
    priority: "medium",
    due_at: null,
    tags: [],
    created_at: "2026-07-01T08:00:00.000Z",
    updated_at: "2026-07-01T08:00:00.000Z",
    completed_at: null,
    version: 1,
    ...overrides,
  };
}

export function newQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: { queries: { retry: false }, mutations: { retry: false } },
  });
}

/** Render `element` at `url` (matched by `path`), with its own query client and router. */
export function renderPage(
  element: ReactElement,
  { url = "/", path = "/", queryClient = newQueryClient() } = {},
) {
  const routes: RouteObject[] = [
    { path, element },
    { path: "*", element: <p>Elsewhere</p> },
  ];
  const router = createMemoryRouter(routes, { initialEntries: [url] });
  const view = render(
    <QueryClientProvider client={queryClient}>
      <RouterProvider router={router} />
    </QueryClientProvider>,
  );
  return { ...view, router, queryClient };
}
