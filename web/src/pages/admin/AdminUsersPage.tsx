import { keepPreviousData, useInfiniteQuery, useMutation, useQueryClient, type InfiniteData } from "@tanstack/react-query";
import { useId, useState } from "react";
import { api, unwrap } from "../../api/client";
import type { Profile, ProfilePage, Role, UserUpdate } from "../../api/types";
import { ErrorMessage } from "../../components/ErrorMessage";
import { Loading } from "../../components/Loading";
import { useSession } from "../../session/SessionProvider";
import { replaceProfile, userListParams, type ActiveFilter, type RoleFilter } from "./adminUsers";
import { useDebouncedValue } from "./useDebouncedValue";
import "./admin.css";

const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 300;
const ROLES: Role[] = ["user", "admin"];

export function AdminUsersPage() {
  const searchId = useId();
  const roleId = useId();
  const activeId = useId();
  const [search, setSearch] = useState("");
  const [role, setRole] = useState<RoleFilter>("any");
  const [active, setActive] = useState<ActiveFilter>("any");
  const params = userListParams({ search: useDebouncedValue(search, SEARCH_DELAY_MS), role, active });

  const users = useInfiniteQuery({
    queryKey: ["admin", "users", params],
    queryFn: async ({ pageParam, signal }) =>
      unwrap(
        await api.GET("/api/v1/users", {
          params: { query: { ...params, limit: PAGE_SIZE, cursor: pageParam ?? undefined } },
          signal,
        }),
      ),
    initialPageParam: null as string | null,
    getNextPageParam: (page) => page.next_cursor,
    // Keeps the current rows on screen while a new search loads, instead of flashing a spinner.
    placeholderData: keepPreviousData,
  });
  const profiles = users.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <div className="admin-page stack">
      <h1>Users</h1>
      <form className="filters" role="search" onSubmit={(event) => event.preventDefault()}>
        <div className="field">
          <label htmlFor={searchId}>Search users</label>
          <input
            id={searchId}
            type="search"
            value={search}
            placeholder="Name or email"
            onChange={(event) => setSearch(event.target.value)}
          />
        </div>
        <div className="field">
          <label htmlFor={roleId}>Role filter</label>
          <select id={roleId} value={role} onChange={(event) => setRole(event.target.value as RoleFilter)}>
            <option value="any">All roles</option>
            <option value="user">Users</option>
            <option value="admin">Admins</option>
          </select>
        </div>
        <div className="field">
          <label htmlFor={activeId}>Active filter</label>
          <select id={activeId} value={active} onChange={(event) => setActive(event.target.value as ActiveFilter)}>
            <option value="any">Active and inactive</option>
            <option value="active">Active only</option>
            <option value="inactive">Inactive only</option>
          </select>
        </div>
      </form>

      {users.isPending ? (
        <Loading label="Loading users" />
      ) : !users.data ? (
        <ErrorMessage error={users.error} onRetry={() => void users.refetch()} />
      ) : profiles.length === 0 ? (
        <p>No users match these filters.</p>
      ) : (
        <>
          {/* Scrolls sideways on narrow screens; its buttons and selects let keyboard users reach every column. */}
          <div className="table-scroll">
            <table className="data-table" aria-busy={users.isPlaceholderData}>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Email</th>
                  <th scope="col">Role</th>
                  <th scope="col">Status</th>
                  <th scope="col">Joined</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {profiles.map((profile) => (
                  <UserRow key={profile.id} profile={profile} />
                ))}
              </tbody>
            </table>
          </div>
          {users.isFetchingNextPage && <Loading label="Loading more users" />}
          {users.hasNextPage && (
            <button
              type="button"
              className="btn load-more"
              // A second click while a page loads waits for it instead of fetching it again.
              onClick={() => void users.fetchNextPage({ cancelRefetch: false })}
            >
              Load more
            </button>
          )}
          {users.isError && <ErrorMessage error={users.error} />}
        </>
      )}
    </div>
  );
}

const joinedFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

function UserRow({ profile }: { profile: Profile }) {
  const queryClient = useQueryClient();
  const { user } = useSession();
  const roleId = useId();
  const isSelf = user?.id === profile.id;
  const update = useMutation({
    mutationFn: async (change: UserUpdate) =>
      unwrap(await api.PATCH("/api/v1/users/{id}", { params: { path: { id: profile.id } }, body: change })),
    onSuccess: async (updated) => {
      // Show the change at once, then refetch: the row may no longer match the filters.
      queryClient.setQueriesData<InfiniteData<ProfilePage, string | null>>({ queryKey: ["admin", "users"] }, (data) =>
        data ? replaceProfile(data, updated) : data,
      );
      await queryClient.invalidateQueries({ queryKey: ["admin", "users"] });
    },
  });
  const name = profile.name || profile.email;

  return (
    <tr>
      <th scope="row">
        {name}
        {isSelf && <span className="muted"> (you)</span>}
      </th>
      <td className="email">{profile.email}</td>
      <td>
        <label htmlFor={roleId} className="visually-hidden">
          Role of {name}
        </label>
        <select
          id={roleId}
          value={profile.role}
          disabled={update.isPending}
          onChange={(event) => update.mutate({ role: event.target.value as Role })}
        >
          {ROLES.map((role) => (
            <option key={role} value={role}>
              {role === "admin" ? "Admin" : "User"}
            </option>
          ))}
        </select>
      </td>
      <td>{profile.active ? "Active" : <span className="badge">Inactive</span>}</td>
      <td>
        <time dateTime={profile.created_at}>{joinedFormat.format(new Date(profile.created_at))}</time>
      </td>
      <td className="actions">
        <button
          type="button"
          className={profile.active ? "btn btn-danger" : "btn"}
          disabled={update.isPending}
          onClick={() => update.mutate({ active: !profile.active })}
        >
          {profile.active ? "Deactivate" : "Activate"}
          <span className="visually-hidden"> {name}</span>
        </button>
        {update.isError && <ErrorMessage error={update.error} />}
      </td>
    </tr>
  );
}
