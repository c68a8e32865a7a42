import { isRouteErrorResponse, useRouteError } from "react-router";

import { NotFoundPage } from "../pages/NotFoundPage";

/**
 * What a page that failed to render shows instead (the router's error element); `standalone`
 * when there is no app frame around it (the root route's error). A page shows its own API
 * errors; this is for bugs and for code that failed to load (a new version was deployed since
 * the page was opened), which a reload fixes. React itself reports the error to the console.
 */
export function RouteError({ standalone = false }: { standalone?: boolean }) {
  const error = useRouteError();
  const notFound = isRouteErrorResponse(error) && error.status === 404;

  const content = notFound ? (
    <NotFoundPage />
  ) : (
    <section className="card message-page" role="alert">
      <h1>Something went wrong</h1>
      <p>This page could not be shown. Reloading usually helps.</p>
      <button type="button" className="btn btn-primary" onClick={() => window.location.reload()}>
        Reload the page
      </button>
    </section>
  );
  // Inside the app's frame the page area is already <main>; without it, this is the page.
  return standalone ? (
    <main id="main" className="app-main">
      {content}
    </main>
  ) : (
    content
  );
}
