import { Link, useLocation } from "react-router";

import { ApiError } from "../../api/problem";
import { ErrorMessage } from "../../components/ErrorMessage";
import { TextField } from "../../components/FormField";
import { useSession } from "../../session/SessionProvider";
import { formText, useFormSubmit } from "./useFormSubmit";

const PASSWORD_RULES = "8 to 128 characters, and not your email address.";

/** Signing up; once signed in, `GuestOnly` takes the user on to the app. */
export function RegisterPage() {
  const { register } = useSession();
  const location = useLocation();
  const { pending, error, onSubmit } = useFormSubmit(async (form) => {
    const name = formText(form, "name").trim();
    await register(formText(form, "email").trim(), formText(form, "password"), name);
  });
  const fieldErrors = registrationFieldErrors(error);

  return (
    <section className="card auth-card">
      <h1>Create an account</h1>
      <form className="stack" onSubmit={onSubmit}>
        <ErrorMessage error={error} />
        <TextField
          label="Name"
          name="name"
          autoComplete="name"
          required
          maxLength={100}
          error={fieldErrors.name}
        />
        <TextField
          label="Email"
          name="email"
          type="email"
          autoComplete="email"
          required
          error={fieldErrors.email}
        />
        <TextField
          label="Password"
          name="password"
          type="password"
          autoComplete="new-password"
          required
          minLength={8}
          maxLength={128}
          hint={PASSWORD_RULES}
          error={fieldErrors.password}
        />
        <button type="submit" className="btn btn-primary" aria-disabled={pending}>
          Create account
        </button>
      </form>
      <p className="auth-links">
        <span>
          Already have an account?{" "}
          <Link to="/login" state={location.state}>
            Log in
          </Link>
        </span>
      </p>
    </section>
  );
}

function registrationFieldErrors(error: unknown): Record<string, string | undefined> {
  if (!(error instanceof ApiError)) {
    return {};
  }
  if (error.status === 409) {
    return { email: "An account with this email already exists." };
  }
  return error.fieldErrors();
}
