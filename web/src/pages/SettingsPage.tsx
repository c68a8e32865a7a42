import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useId, useRef, useState, type FormEvent } from "react";
import { flushSync } from "react-dom";
import { useNavigate } from "react-router";
import { ApiError, api, unwrap } from "../api/client";
import type { Profile, ProfileUpdate } from "../api/types";
import { ErrorMessage } from "../components/ErrorMessage";
import { TextField } from "../components/FormField";
import { Loading } from "../components/Loading";
import { useSession } from "../session/SessionProvider";
import "./SettingsPage.css";

export const NAME_MAX = 100;
export const BIO_MAX = 500;
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;
/** What the user types to confirm deleting their account. */
export const DELETE_CONFIRMATION = "DELETE";

export const PASSWORD_CHANGED = "Password changed; other sessions were signed out.";
export const WRONG_CURRENT_PASSWORD = "Current password is wrong";

const PROFILE_KEY = ["users", "me"] as const;

export interface ProfileValues {
  name: string;
  bio: string;
  timezone: string;
  emailNotifications: boolean;
}
export type ProfileErrors = Partial<Record<"name" | "bio" | "timezone", string>>;

export interface PasswordValues {
  current: string;
  next: string;
}
export type PasswordErrors = Partial<Record<keyof PasswordValues, string>>;

/** Length as the API counts it: in characters (code points), not UTF-16 units. */
function characters(text: string): number {
  return [...text].length;
}

/** The IANA zones offered: UTC first, then the runtime's zones, plus `current` if it lacks it. */
export function timeZoneOptions(current: string): string[] {
  const zones = new Set(Intl.supportedValuesOf("timeZone"));
  zones.add(current);
  zones.delete("UTC");
  return ["UTC", ...[...zones].sort()];
}

export function validateProfile(values: ProfileValues, zones: readonly string[]): ProfileErrors {
  const errors: ProfileErrors = {};
  const name = values.name.trim();
  if (!name) errors.name = "Enter your name.";
  else if (characters(name) > NAME_MAX) errors.name = `Use at most ${NAME_MAX} characters.`;
  if (characters(values.bio) > BIO_MAX) errors.bio = `Use at most ${BIO_MAX} characters.`;
  if (!zones.includes(values.timezone)) errors.timezone = "Choose a time zone from the list.";
  return errors;
}

export function validatePasswordChange(values: PasswordValues, email: string | undefined): PasswordErrors {
  const errors: PasswordErrors = {};
  if (!values.current) errors.current = "Enter your current password.";
  const length = characters(values.next);
  if (length < PASSWORD_MIN) errors.next = `Use at least ${PASSWORD_MIN} characters.`;
  else if (length > PASSWORD_MAX) errors.next = `Use at most ${PASSWORD_MAX} characters.`;
  else if (email && values.next.toLowerCase() === email.toLowerCase()) {
    errors.next = "Don't use your email address as your password.";
  }
  return errors;
}

/**
 * The field errors a failed change-password call means, or null when the error is not about
 * a field (the caller shows it whole). 401 here is the current password: the client has
 * already refreshed the session and retried once, so it is not an expired token.
 */
export function passwordChangeErrors(error: unknown): PasswordErrors | null {
  if (!(error instanceof ApiError)) return null;
  if (error.status === 401) return { current: WRONG_CURRENT_PASSWORD };
  if (error.status === 422) {
    const fields = error.fieldErrors();
    const errors: PasswordErrors = {};
    if (fields.current_password) errors.current = fields.current_password;
    if (fields.new_password) errors.next = fields.new_password;
    return errors.current || errors.next ? errors : null;
  }
  return null;
}

/** The field errors of a 422 to a profile update, or null when it names none of the fields. */
export function profileUpdateErrors(error: unknown): ProfileErrors | null {
  if (!(error instanceof ApiError) || error.status !== 422) return null;
  const fields = error.fieldErrors();
  const errors: ProfileErrors = {};
  for (const field of ["name", "bio", "timezone"] as const) {
    if (fields[field]) errors[field] = fields[field];
  }
  return Object.keys(errors).length > 0 ? errors : null;
}

/** Moves focus to the form's first invalid field, so its error message is read out with it. */
function focusFirstInvalid(form: HTMLFormElement | null) {
  form?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
}

export function SettingsPage() {
  return (
    <div className="settings-page stack">
      <h1>Settings</h1>
      <ProfileSection />
      <PasswordSection />
      <DeleteAccountSection />
    </div>
  );
}

function ProfileSection() {
  const headingId = useId();
  const profile = useQuery({
    queryKey: PROFILE_KEY,
    queryFn: async ({ signal }) => unwrap(await api.GET("/api/v1/users/me", { signal })),
  });
  return (
    <section aria-labelledby={headingId} className="card stack">
      <h2 id={headingId}>Profile</h2>
      {profile.isPending ? (
        <Loading label="Loading profile" />
      ) : !profile.data ? (
        <ErrorMessage error={profile.error} onRetry={() => void profile.refetch()} />
      ) : (
        // Keyed by id: the form starts from the saved profile and keeps what the user typed.
        <ProfileForm key={profile.data.id} profile={profile.data} />
      )}
    </section>
  );
}

function ProfileForm({ profile }: { profile: Profile }) {
  const queryClient = useQueryClient();
  const bioId = useId();
  const bioHintId = useId();
  const bioErrorId = useId();
  const zoneId = useId();
  const zoneErrorId = useId();
  const emailId = useId();
  const [values, setValues] = useState<ProfileValues>({
    name: profile.name,
    bio: profile.bio,
    timezone: profile.timezone,
    emailNotifications: profile.email_notifications,
  });
  const formRef = useRef<HTMLFormElement>(null);
  const [errors, setErrors] = useState<ProfileErrors>({});
  const [zones] = useState(() => timeZoneOptions(profile.timezone));
  const save = useMutation({
    mutationFn: async (body: ProfileUpdate) => unwrap(await api.PATCH("/api/v1/users/me", { body })),
    onSuccess: (saved) => queryClient.setQueryData(PROFILE_KEY, saved),
    onError: (error) => {
      flushSync(() => setErrors(profileUpdateErrors(error) ?? {}));
      focusFirstInvalid(formRef.current);
    },
  });

  function change<K extends keyof ProfileValues>(field: K, value: ProfileValues[K]) {
    setValues((current) => ({ ...current, [field]: value }));
    save.reset();
  }

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const found = validateProfile(values, zones);
    flushSync(() => setErrors(found));
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    save.mutate({
      name: values.name.trim(),
      bio: values.bio,
      timezone: values.timezone,
      email_notifications: values.emailNotifications,
    });
  }

  const bioLength = characters(values.bio);
  return (
    <form ref={formRef} className="stack" noValidate onSubmit={submit}>
      <TextField
        label="Name"
        name="name"
        type="text"
        autoComplete="name"
        value={values.name}
        error={errors.name}
        onChange={(event) => change("name", event.target.value)}
      />
      <div className="field">
        <label htmlFor={bioId}>Bio</label>
        <textarea
          id={bioId}
          name="bio"
          rows={4}
          value={values.bio}
          aria-invalid={errors.bio ? true : undefined}
          aria-describedby={errors.bio ? `${bioHintId} ${bioErrorId}` : bioHintId}
          onChange={(event) => change("bio", event.target.value)}
        />
        <p id={bioHintId} className={bioLength > BIO_MAX ? "field-hint over-limit" : "field-hint"}>
          {bioLength} of {BIO_MAX} characters
        </p>
        {errors.bio && (
          <p id={bioErrorId} className="field-error">
            {errors.bio}
          </p>
        )}
      </div>
      <div className="field">
        <label htmlFor={zoneId}>Time zone</label>
        <select
          id={zoneId}
          name="timezone"
          value={values.timezone}
          aria-invalid={errors.timezone ? true : undefined}
          aria-describedby={errors.timezone ? zoneErrorId : undefined}
          onChange={(event) => change("timezone", event.target.value)}
        >
          {zones.map((zone) => (
            <option key={zone} value={zone}>
              {zone.replaceAll("_", " ")}
            </option>
          ))}
        </select>
        {errors.timezone && (
          <p id={zoneErrorId} className="field-error">
            {errors.timezone}
          </p>
        )}
      </div>
      <div className="checkbox">
        <input
          id={emailId}
          name="email_notifications"
          type="checkbox"
          checked={values.emailNotifications}
          onChange={(event) => change("emailNotifications", event.target.checked)}
        />
        <label htmlFor={emailId}>Email notifications</label>
      </div>
      <div className="form-actions">
        <button type="submit" className="btn btn-primary" disabled={save.isPending}>
          Save profile
        </button>
        <p role="status">{save.isSuccess ? "Profile saved." : ""}</p>
      </div>
      {save.isError && !profileUpdateErrors(save.error) && <ErrorMessage error={save.error} />}
    </form>
  );
}

function PasswordSection() {
  const headingId = useId();
  const { user } = useSession();
  const [values, setValues] = useState<PasswordValues>({ current: "", next: "" });
  const formRef = useRef<HTMLFormElement>(null);
  const [errors, setErrors] = useState<PasswordErrors>({});
  const changePassword = useMutation({
    mutationFn: async (body: { current_password: string; new_password: string }) =>
      unwrap(await api.POST("/api/v1/auth/change-password", { body })),
    onSuccess: () => setValues({ current: "", next: "" }),
    onError: (error) => {
      flushSync(() => setErrors(passwordChangeErrors(error) ?? {}));
      focusFirstInvalid(formRef.current);
    },
  });

  function change(field: keyof PasswordValues, value: string) {
    setValues((current) => ({ ...current, [field]: value }));
    changePassword.reset();
  }

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const found = validatePasswordChange(values, user?.email);
    flushSync(() => setErrors(found));
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    changePassword.mutate({ current_password: values.current, new_password: values.next });
  }

  return (
    <section aria-labelledby={headingId} className="card stack">
      <h2 id={headingId}>Password</h2>
      <form ref={formRef} className="stack" noValidate onSubmit={submit}>
        <TextField
          label="Current password"
          name="current_password"
          type="password"
          autoComplete="current-password"
          value={values.current}
          error={errors.current}
          onChange={(event) => change("current", event.target.value)}
        />
        <TextField
          label="New password"
          name="new_password"
          type="password"
          autoComplete="new-password"
          hint={`${PASSWORD_MIN} to ${PASSWORD_MAX} characters, not your email address.`}
          value={values.next}
          error={errors.next}
          onChange={(event) => change("next", event.target.value)}
        />
        <div className="form-actions">
          <button type="submit" className="btn btn-primary" disabled={changePassword.isPending}>
            Change password
          </button>
          <p role="status">{changePassword.isSuccess ? PASSWORD_CHANGED : ""}</p>
        </div>
        {changePassword.isError && !passwordChangeErrors(changePassword.error) && (
          <ErrorMessage error={changePassword.error} />
        )}
      </form>
    </section>
  );
}

function DeleteAccountSection() {
  const headingId = useId();
  const { logout } = useSession();
  const navigate = useNavigate();
  const confirmFormRef = useRef<HTMLFormElement>(null);
  const startButtonRef = useRef<HTMLButtonElement>(null);
  const [confirming, setConfirming] = useState(false);
  const [typed, setTyped] = useState("");
  const [mismatch, setMismatch] = useState<string | undefined>();
  const deleteAccount = useMutation({
    mutationFn: async () => unwrap(await api.DELETE("/api/v1/users/me")),
    onSuccess: async () => {
      // The account is gone: end the local session (its tokens already stopped working).
      await logout();
      await navigate("/login", { replace: true });
    },
  });

  function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (typed !== DELETE_CONFIRMATION) {
      flushSync(() => setMismatch(`Type ${DELETE_CONFIRMATION} in capitals to confirm.`));
      focusFirstInvalid(confirmFormRef.current);
      return;
    }
    setMismatch(undefined);
    deleteAccount.mutate();
  }

  // The button that was clicked disappears in both directions: move focus to what replaced it.
  function startConfirming() {
    flushSync(() => setConfirming(true));
    confirmFormRef.current?.querySelector("input")?.focus();
  }

  function cancel() {
    flushSync(() => {
      setConfirming(false);
      setTyped("");
      setMismatch(undefined);
    });
    deleteAccount.reset();
    startButtonRef.current?.focus();
  }

  return (
    <section aria-labelledby={headingId} className="card stack danger-zone">
      <h2 id={headingId}>Delete account</h2>
      <p>
        Deleting your account removes your tasks, attachments and notifications for good. This cannot be undone.
      </p>
      {confirming ? (
        <form ref={confirmFormRef} className="stack" noValidate onSubmit={submit}>
          <TextField
            label={`Type ${DELETE_CONFIRMATION} to confirm`}
            name="confirm_delete"
            type="text"
            autoComplete="off"
            autoCapitalize="characters"
            spellCheck={false}
            value={typed}
            error={mismatch}
            onChange={(event) => setTyped(event.target.value)}
          />
          <div className="form-actions">
            <button type="submit" className="btn btn-danger" disabled={deleteAccount.isPending}>
              Delete account
            </button>
            <button type="button" className="btn" onClick={cancel}>
              Cancel
            </button>
          </div>
          {deleteAccount.isError && <ErrorMessage error={deleteAccount.error} />}
        </form>
      ) : (
        <div>
          <button ref={startButtonRef} type="button" className="btn btn-danger" onClick={startConfirming}>
            Delete account
          </button>
        </div>
      )}
    </section>
  );
}
