import { useQueryClient } from "@tanstack/react-query";
import { createContext, use, useEffect, useRef, useState, type ReactNode } from "react";

import { useSession, useSessionManager } from "../session/SessionProvider";
import { applyLiveMessage, refetchAfterReconnect } from "./cacheUpdates";
import { LiveSocket, liveUrl, type LiveStatus } from "./socket";

const LiveStatusContext = createContext<LiveStatus>("closed");

/** Keeps the tab's live socket open while someone is signed in, and applies what it pushes. */
export function LiveProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const manager = useSessionManager();
  const { status: sessionStatus, user } = useSession();
  const [status, setStatus] = useState<LiveStatus>("closed");
  // Read by the message handler, so that a changed user object does not reopen the socket.
  const viewer = useRef(user);
  useEffect(() => {
    viewer.current = user;
  }, [user]);

  useEffect(() => {
    if (sessionStatus !== "authenticated") {
      return;
    }
    const socket = new LiveSocket({
      url: liveUrl(),
      token: () => manager.accessToken(),
      refreshToken: () => manager.refresh(),
    });
    const unsubscribers = [
      socket.onStatus(setStatus),
      socket.onMessage((message) => applyLiveMessage(queryClient, message, viewer.current)),
      socket.onReconnect(() => refetchAfterReconnect(queryClient)),
    ];
    socket.start();
    return () => {
      unsubscribers.forEach((unsubscribe) => unsubscribe());
      socket.stop();
      setStatus("closed");
    };
  }, [sessionStatus, manager, queryClient]);

  return <LiveStatusContext value={status}>{children}</LiveStatusContext>;
}

export function useLiveStatus(): LiveStatus {
  return use(LiveStatusContext);
}
