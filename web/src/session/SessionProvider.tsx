import { useQueryClient } from "@tanstack/react-query";
import createClient from "openapi-fetch";
import { createContext, use, useEffect, useMemo, useSyncExternalStore, type ReactNode } from "react";

import type { paths } from "../api/generated/schema";
import type { User } from "../api/types";
import { SessionManager, type SessionStatus } from "./session";

/**
 * The app's one session. Its client adds no bearer token: the session authenticates its own
 * calls (and `api/client.ts` authenticates every other call with this session's token).
 */
export const session = new SessionManager({
  client: createClient<paths>({ baseUrl: window.location.origin }),
});

const SessionContext = createContext<SessionManager>(session);

export interface SessionProviderProps {
  children: ReactNode;
  /** Another session than the app's (tests). */
  manager?: SessionManager;
}

export function SessionProvider({ children, manager = session }: SessionProviderProps) {
  const queryClient = useQueryClient();
  const { status } = useSyncExternalStore(manager.subscribe, manager.getState);

  useEffect(() => {
    void manager.restore();
  }, [manager]);

  useEffect(() => {
    // Nothing cached for the previous user may show to the next one.
    if (status === "anonymous") {
      queryClient.clear();
    }
  }, [status, queryClient]);

  return <SessionContext value={manager}>{children}</SessionContext>;
}

export interface Session {
  status: SessionStatus;
  user: User | null;
  login(email: string, password: string): Promise<User>;
  register(email: string, password: string, name: string): Promise<User>;
  logout(): Promise<void>;
  refreshUser(): Promise<void>;
}

export function useSession(): Session {
  const manager = useSessionManager();
  const { status, user } = useSyncExternalStore(manager.subscribe, manager.getState);
  const actions = useMemo(
    () => ({
      login: (email: string, password: string) => manager.login(email, password),
      register: (email: string, password: string, name: string) =>
        manager.register(email, password, name),
      logout: () => manager.logout(),
      refreshUser: () => manager.reloadUser(),
    }),
    [manager],
  );
  return { status, user, ...actions };
}

/** The session manager itself, for code that needs tokens (the live socket). */
export function useSessionManager(): SessionManager {
  return use(SessionContext);
}
