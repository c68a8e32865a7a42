import { Link, useLocation } from "react-router";

import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { useSession } from "../../session/SessionProvider";
import { formText, useFormSubmit } from "./useFormSubmit";

/** Logging in; once signed in, `GuestOnly` takes the user back where they came from. */
export function LoginPage() {
  const { login } = useSession();
  const location = useLocation();
  const { pending, error, onSubmit } = useFormSubmit(async (form) => {
    await login(formText(form, "email").trim(), formText(form, "password"));
  });

  return (
    <section className="card auth-card">
      <h1>Log in</h1>
      <form className="stack" onSubmit={onSubmit}>
        <ErrorMessage error={error} />
        <TextField label="Email" name="email" type="email" autoComplete="username" required />
        <TextField label="Password" name="password" type="password" autoComplete="current-password" required />
        <button type="submit" className="btn btn-primary" aria-disabled={pending}>
          Log in
        </button>
      </form>
      <p className="auth-links">
        <Link to="/forgot-password">Forgot password?</Link>
        {/* The sign-up page returns to the same page the login would have. */}
        <Link to="/register" state={location.state}>
          Create an account
        </Link>
      </p>
    </section>
  );
}
