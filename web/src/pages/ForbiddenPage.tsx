import { Link } from "react-router";

/** Shown in place of a page the signed-in user may not see (admin pages for non-admins). */
export function ForbiddenPage() {
  return (
    <section className="card message-page">
      <h1>Not allowed</h1>
      <p>This page is for administrators only.</p>
      <p>
        <Link to="/tasks">Back to the task list</Link>
      </p>
    </section>
  );
}
