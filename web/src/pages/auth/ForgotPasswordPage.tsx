import { useState } from "react";
import { Link } from "react-router";

import { api, unwrap } from "../../api/client";
import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { formText, useFormSubmit } from "./useFormSubmit";

/** The same answer whether or not the account exists: the API does not reveal accounts. */
export const RESET_LINK_SENT = "If an account exists for that address, we sent a reset link.";

export function ForgotPasswordPage() {
  const [sent, setSent] = useState(false);
  const { pending, error, onSubmit } = useFormSubmit(async (form) => {
    const email = formText(form, "email").trim();
    unwrap(await api.POST("/api/v1/auth/forgot-password", { body: { email } }));
    setSent(true);
  });

  return (
    <section className="card auth-card">
      <h1>Reset your password</h1>
      {sent ? null : (
        <form className="stack" onSubmit={onSubmit}>
          <p>Enter your account's email address and we will send you a link to choose a new password.</p>
          <ErrorMessage error={error} />
          <TextField label="Email" name="email" type="email" autoComplete="email" required />
          <button type="submit" className="btn btn-primary" aria-disabled={pending}>
            Send reset link
          </button>
        </form>
      )}
      <p role="status">{sent ? RESET_LINK_SENT : ""}</p>
      <p className="auth-links">
        <Link to="/login">Back to log in</Link>
      </p>
    </section>
  );
}
