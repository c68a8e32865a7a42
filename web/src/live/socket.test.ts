import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import {
  FIRST_RETRY_MS,
  LiveSocket,
  MAX_RETRY_MS,
  STABLE_AFTER_MS,
  TOKEN_REFUSED,
  liveUrl,
  type LiveMessage,
  type LiveSocketOptions,
  type SocketLike,
} from "./socket";

class FakeSocket implements SocketLike {
  readyState = 0;
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  closedWith: number | undefined;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}

  open(): void {
    this.readyState = 1;
    this.onopen?.(new Event("open"));
  }

  push(message: Partial<LiveMessage>): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(message) }));
  }

  /** The server (or the network) closes the socket. */
  drop(code = 1006): void {
    this.readyState = 3;
    this.onclose?.(new CloseEvent("close", { code }));
  }

  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
}

function liveSocket(overrides: Partial<LiveSocketOptions> = {}) {
  const sockets: FakeSocket[] = [];
  let token: string | null = "token-1";
  const refreshToken = vi.fn(async () => {
    token = "token-2";
    return token;
  });
  const socket = new LiveSocket({
    url: "ws://localhost/api/v1/ws",
    token: () => token,
    refreshToken,
    connect: (url, protocols) => {
      const fake = new FakeSocket(url, protocols);
      sockets.push(fake);
      return fake;
    },
    random: () => 1,
    ...overrides,
  });
  const latest = () => {
    const last = sockets.at(-1);
    if (last === undefined) {
      throw new Error("no socket was opened");
    }
    return last;
  };
  return { socket, sockets, latest, refreshToken, setToken: (next: string | null) => (token = next) };
}

const TASK_UPDATED: LiveMessage = {
  type: "task.updated",
  data: { id: "t1", version: 2 },
  id: "event-1",
  time: "2026-11-28T09:42:14.123Z",
};

describe("LiveSocket", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  it("connects to the live endpoint with the token as the bearer subprotocol", () => {
    const { socket, latest } = liveSocket();

    socket.start();
    expect(socket.status).toBe("connecting");
    latest().open();

    expect(latest().url).toBe("ws://localhost/api/v1/ws");
    expect(latest().protocols).toEqual(["bearer", "token-1"]);
    expect(socket.status).toBe("open");
  });

  it("derives ws: and wss: URLs from the page's origin", () => {
    expect(liveUrl("http://localhost:8000")).toBe("ws://localhost:8000/api/v1/ws");
    expect(liveUrl("https://taskmesh.example")).toBe("wss://taskmesh.example/api/v1/ws");
  });

  it("passes messages on and ignores one delivered twice", () => {
    const { socket, latest } = liveSocket();
    const received: LiveMessage[] = [];
    socket.onMessage((message) => received.push(message));
    socket.start();
    latest().open();

    latest().push(TASK_UPDATED);
    latest().push(TASK_UPDATED);
    latest().push({ ...TASK_UPDATED, id: "event-2" });
    latest().onmessage?.(new MessageEvent("message", { data: "not json" }));

    expect(received.map((message) => message.id)).toEqual(["event-1", "event-2"]);
  });

  it("ignores a duplicate that arrives on the next connection", async () => {
    const { socket, latest } = liveSocket();
    const received = vi.fn();
    socket.onMessage(received);
    socket.start();
    latest().open();
    latest().push(TASK_UPDATED);

    latest().drop();
    await vi.advanceTimersByTimeAsync(FIRST_RETRY_MS);
    latest().open();
    latest().push(TASK_UPDATED);

    expect(received).toHaveBeenCalledTimes(1);
  });

  it("reconnects with exponential backoff capped at 30 s", async () => {
    const { socket, sockets, latest } = liveSocket();
    socket.start();
    const delays: number[] = [];

    for (let attempt = 0; attempt < 8; attempt += 1) {
      const before = sockets.length;
      latest().drop();
      let waited = 0;
      while (sockets.length === before) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
      }
      delays.push(waited);
    }

    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, MAX_RETRY_MS, MAX_RETRY_MS]);
  });

  it("spreads reconnects with jitter between half and all of the backoff", async () => {
    const { socket, sockets, latest } = liveSocket({ random: () => 0 });
    socket.start();

    latest().drop();
    await vi.advanceTimersByTimeAsync(FIRST_RETRY_MS / 2 - 1);
    expect(sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets).toHaveLength(2);
  });

  it("retries quickly again after a stable connection", async () => {
    const { socket, sockets, latest } = liveSocket();
    socket.start();
    latest().drop();
    await vi.advanceTimersByTimeAsync(FIRST_RETRY_MS);
    latest().drop();
    await vi.advanceTimersByTimeAsync(2 * FIRST_RETRY_MS);
    expect(sockets).toHaveLength(3);

    latest().open();
    await vi.advanceTimersByTimeAsync(STABLE_AFTER_MS);
    latest().drop();
    await vi.advanceTimersByTimeAsync(FIRST_RETRY_MS);

    expect(sockets).toHaveLength(4);
  });

  it("tells listeners about every re-open after a drop, not the first open", async () => {
    const { socket, latest } = liveSocket();
    const reconnected = vi.fn();
    socket.onReconnect(reconnected);
    socket.start();
    latest().open();
    expect(reconnected).not.toHaveBeenCalled();

    latest().drop(1001);
    await vi.advanceTimersByTimeAsync(FIRST_RETRY_MS);
    latest().open();
    expect(reconnected).toHaveBeenCalledTimes(1);

    latest().drop(1013);
    await vi.advanceTimersByTimeAsync(2 * FIRST_RETRY_MS);
    latest().open();
    expect(reconnected).toHaveBeenCalledTimes(2);
  });

  it("refreshes the session on 4001 and reconnects at once with the new token", async () => {
    const { socket, sockets, latest, refreshToken } = liveSocket();
    const reconnected = vi.fn();
    socket.onReconnect(reconnected);
    socket.start();
    latest().open();

    latest().drop(TOKEN_REFUSED);
    await vi.advanceTimersByTimeAsync(0);

    expect(refreshToken).toHaveBeenCalledTimes(1);
    expect(sockets).toHaveLength(2);
    expect(latest().protocols).toEqual(["bearer", "token-2"]);
    latest().open();
    expect(reconnected).toHaveBeenCalledTimes(1);
  });

  it("reuses a token the session refreshed meanwhile instead of refreshing again", async () => {
    const { socket, latest, refreshToken, setToken } = liveSocket();
    socket.start();
    latest().open();

    setToken("token-from-timer");
    latest().drop(TOKEN_REFUSED);
    await vi.advanceTimersByTimeAsync(0);

    expect(refreshToken).not.toHaveBeenCalled();
    expect(latest().protocols).toEqual(["bearer", "token-from-timer"]);
  });

  it("backs off when the session cannot be refreshed after a 4001", async () => {
    const refreshToken = vi.fn(async () => null);
    const { socket, sockets, latest } = liveSocket({ refreshToken });
    socket.start();
    latest().open();

    latest().drop(TOKEN_REFUSED);
    await vi.advanceTimersByTimeAsync(FIRST_RETRY_MS - 1);
    expect(sockets).toHaveLength(1);
    expect(socket.status).toBe("closed");
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets).toHaveLength(2);
  });

  it("does not connect without a token", () => {
    const { socket, sockets, setToken } = liveSocket();
    setToken(null);

    socket.start();

    expect(sockets).toHaveLength(0);
    expect(socket.status).toBe("closed");
  });

  it("stops: closes the socket normally and never reconnects", async () => {
    const { socket, sockets, latest } = liveSocket();
    const statuses: string[] = [];
    socket.onStatus((status) => statuses.push(status));
    socket.start();
    const first = latest();
    first.open();

    socket.stop();
    first.drop(1000);
    await vi.advanceTimersByTimeAsync(MAX_RETRY_MS * 2);

    expect(first.closedWith).toBe(1000);
    expect(sockets).toHaveLength(1);
    expect(statuses).toEqual(["connecting", "open", "closed"]);
  });

  it("stops during a backoff without reconnecting later", async () => {
    const { socket, sockets, latest } = liveSocket();
    socket.start();
    latest().drop();

    socket.stop();
    await vi.advanceTimersByTimeAsync(MAX_RETRY_MS * 2);

    expect(sockets).toHaveLength(1);
  });

  it("closes a socket that is still connecting once it opens, so the browser logs no warning", () => {
    const { socket, latest } = liveSocket();
    socket.start();
    const connecting = latest();

    socket.stop();
    expect(connecting.closedWith).toBeUndefined();
    connecting.open();

    expect(connecting.closedWith).toBe(1000);
  });
});
