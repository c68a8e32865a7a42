import { Link } from "react-router";

export function NotFoundPage() {
  return (
    <section className="card message-page">
      <h1>Page not found</h1>
      <p>There is nothing at this address. The link may be mistyped, or the page may have moved.</p>
      <p>
        <Link to="/">Go to the start page</Link>
      </p>
    </section>
  );
}
