// The admin users list's filters → query mapping and cache update: pure, unit-tested.
import type { InfiniteData } from "@tanstack/react-query";
import type { Profile, ProfilePage, Role } from "../../api/types";

export type RoleFilter = "any" | Role;
export type ActiveFilter = "any" | "active" | "inactive";

export interface UserFilters {
  search: string;
  role: RoleFilter;
  active: ActiveFilter;
}

export interface UserListParams {
  q?: string;
  role?: Role;
  active?: boolean;
}

/** The `GET /api/v1/users` query for the filters; "any" and a blank search are left out. */
export function userListParams({ search, role, active }: UserFilters): UserListParams {
  const params: UserListParams = {};
  const q = search.trim();
  if (q) params.q = q;
  if (role !== "any") params.role = role;
  if (active !== "any") params.active = active === "active";
  return params;
}

/** The cached pages with one profile replaced by its updated version (same position). */
export function replaceProfile(
  data: InfiniteData<ProfilePage, string | null>,
  updated: Profile,
): InfiniteData<ProfilePage, string | null> {
  return {
    ...data,
    pages: data.pages.map((page) => ({
      ...page,
      items: page.items.map((profile) => (profile.id === updated.id ? updated : profile)),
    })),
  };
}
