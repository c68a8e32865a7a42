/** Test data shared by the unit tests: API objects with plausible defaults. */
import type { Profile } from "../api/types";

/** A profile as GET /api/v1/users/me or the admin listing answers it; `overrides` win. */
export function makeProfile(overrides: Partial<Profile> = {}): Profile {
  return {
    id: "u1",
    email: "ada@example.com",
    name: "Ada",
    bio: "",
    timezone: "UTC",
    email_notifications: true,
    role: "user",
    active: true,
    created_at: "2026-11-01T00:00:00Z",
    updated_at: "2026-11-01T00:00:00Z",
    ...overrides,
  };
}
