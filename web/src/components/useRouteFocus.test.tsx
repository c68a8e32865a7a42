import { act, render, screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useEffect, useState } from "react";
import { createMemoryRouter, Link, Outlet, RouterProvider } from "react-router";
import { describe, expect, it } from "vitest";

import { useRouteFocus } from "./useRouteFocus";

function Root() {
  useRouteFocus();
  return (
    <>
      <nav aria-label="Main">
        <Link to="/first">First</Link>
        <Link to="/second">Second</Link>
        <Link to="/slow">Slow</Link>
        <Link to="/second?page=2">Next page</Link>
      </nav>
      <main>
        <Outlet />
      </main>
    </>
  );
}

/** A page whose heading shows only once its data has arrived. */
function SlowPage() {
  const [loaded, setLoaded] = useState(false);
  useEffect(() => {
    const timer = setTimeout(() => setLoaded(true), 20);
    return () => clearTimeout(timer);
  }, []);
  return loaded ? <h1>Slow page</h1> : <p>Loading…</p>;
}

function renderPages() {
  const router = createMemoryRouter(
    [
      {
        element: <Root />,
        children: [
          { path: "/first", element: <h1>First page</h1> },
          { path: "/second", element: <h1>Second page</h1> },
          { path: "/slow", element: <SlowPage /> },
        ],
      },
    ],
    { initialEntries: ["/first"] },
  );
  render(<RouterProvider router={router} />);
  return router;
}

describe("useRouteFocus", () => {
  it("names the document after the first page without moving focus", () => {
    renderPages();

    expect(document.title).toBe("First page · taskmesh");
    expect(document.body).toHaveFocus();
  });

  it("moves focus to the new page's heading", async () => {
    renderPages();

    await userEvent.setup().click(screen.getByRole("link", { name: "Second" }));

    expect(screen.getByRole("heading", { name: "Second page" })).toHaveFocus();
    expect(document.title).toBe("Second page · taskmesh");
  });

  it("waits for a heading that shows once the page has loaded", async () => {
    renderPages();

    await userEvent.setup().click(screen.getByRole("link", { name: "Slow" }));

    await waitFor(() => expect(screen.getByRole("heading", { name: "Slow page" })).toHaveFocus());
  });

  it("leaves focus alone when only the query string changes", async () => {
    const router = renderPages();
    const user = userEvent.setup();
    await user.click(screen.getByRole("link", { name: "Second" }));
    const nextPage = screen.getByRole("link", { name: "Next page" });

    await user.click(nextPage);
    await act(() => Promise.resolve());

    expect(router.state.location.search).toBe("?page=2");
    expect(nextPage).toHaveFocus();
  });
});
