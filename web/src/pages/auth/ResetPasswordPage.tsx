import { useState } from "react";
import { Link, useSearchParams } from "react-router";

import { api, unwrap } from "../../api/client";
import { ApiError } from "../../api/problem";
import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { formText, useFormSubmit } from "./useFormSubmit";

/** The page a reset email links to: /reset-password?token=… */
export function ResetPasswordPage() {
  const [searchParams] = useSearchParams();
  const token = searchParams.get("token");
  const [done, setDone] = useState(false);
  const { pending, error, onSubmit } = useFormSubmit(async (form) => {
    const body = { token: token ?? "", new_password: formText(form, "new_password") };
    unwrap(await api.POST("/api/v1/auth/reset-password", { body }));
    setDone(true);
  });
  const passwordError = error instanceof ApiError ? error.fieldErrors().new_password : undefined;
  // 400: the token is bad, used or expired; only a new email helps.
  const linkRefused = error instanceof ApiError && error.status === 400;

  return (
    <section className="card auth-card">
      <h1>Choose a new password</h1>
      {token === null ? (
        <p>This reset link is incomplete. Copy the whole link from the email, or ask for a new one.</p>
      ) : null}
      {token !== null && !done ? (
        <form className="stack" onSubmit={onSubmit}>
          <ErrorMessage error={error} />
          <TextField
            label="New password"
            name="new_password"
            type="password"
            autoComplete="new-password"
            required
            minLength={8}
            maxLength={128}
            hint="8 to 128 characters, and not your email address."
            error={passwordError}
          />
          <button type="submit" className="btn btn-primary" aria-disabled={pending}>
            Set password
          </button>
        </form>
      ) : null}
      <p role="status">{done ? "Your password has been changed, and every session was logged out." : ""}</p>
      <p className="auth-links">
        {done ? <Link to="/login">Log in with your new password</Link> : null}
        {token === null || linkRefused ? <Link to="/forgot-password">Ask for a new reset link</Link> : null}
      </p>
    </section>
  );
}
