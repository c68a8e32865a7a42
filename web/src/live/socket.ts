/**
 * The tab's one WebSocket to `/api/v1/ws`, framework-free.
 *
 * The access token travels as the subprotocol pair `bearer, <token>` (never in the URL, which
 * servers log). A dropped socket reconnects with exponential backoff and jitter; the gateway
 * closes with 4001 when the token expires or is revoked, and the socket then reconnects with a
 * fresh token. Listeners of `onReconnect` learn of every re-open after a drop: messages sent
 * while the socket was down are lost, so they refetch what they show.
 */

/** One pushed change: `data` is what the REST API answers for the same thing. */
export interface LiveMessage {
  type: string;
  data: unknown;
  id: string;
  time: string;
}

export type LiveStatus = "connecting" | "open" | "closed";

/** The part of the browser's WebSocket the live socket uses (tests pass a fake). */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  close(code?: number, reason?: string): void;
}

export interface LiveSocketOptions {
  url: string;
  /** The current access token, or null when there is no session. */
  token: () => string | null;
  /** A new access token after the gateway refused the current one; null when there is none. */
  refreshToken: () => Promise<string | null>;
  connect?: (url: string, protocols: string[]) => SocketLike;
  /** In [0, 1): spreads reconnects of many tabs and clients over time. */
  random?: () => number;
}

export const BEARER_SUBPROTOCOL = "bearer";
/** The gateway's close code for an expired or revoked access token. */
export const TOKEN_REFUSED = 4001;
export const FIRST_RETRY_MS = 500;
export const MAX_RETRY_MS = 30_000;
/** A socket open this long counts as stable: the next drop retries quickly again. */
export const STABLE_AFTER_MS = 10_000;
/** How many message ids to remember for recognising a message delivered twice. */
export const SEEN_IDS_KEPT = 500;

const CONNECTING = 0;
const NORMAL_CLOSURE = 1000;

type Listener<T> = (value: T) => void;

export class LiveSocket {
  private readonly options: Required<LiveSocketOptions>;
  private readonly messageListeners = new Set<Listener<LiveMessage>>();
  private readonly reconnectListeners = new Set<Listener<void>>();
  private readonly statusListeners = new Set<Listener<LiveStatus>>();
  private readonly seen = new Set<string>();
  private socket: SocketLike | null = null;
  private socketToken: string | null = null;
  private running = false;
  private everOpened = false;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private stableTimer: ReturnType<typeof setTimeout> | undefined;
  private currentStatus: LiveStatus = "closed";

  constructor(options: LiveSocketOptions) {
    this.options = {
      connect: (url, protocols) => new WebSocket(url, protocols),
      random: Math.random,
      ...options,
    };
  }

  get status(): LiveStatus {
    return this.currentStatus;
  }

  onMessage(listener: Listener<LiveMessage>): () => void {
    return subscribe(this.messageListeners, listener);
  }

  onReconnect(listener: () => void): () => void {
    return subscribe(this.reconnectListeners, listener);
  }

  onStatus(listener: Listener<LiveStatus>): () => void {
    return subscribe(this.statusListeners, listener);
  }

  start(): void {
    if (this.running) {
      return;
    }
    this.running = true;
    this.everOpened = false;
    this.failures = 0;
    this.open();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stableTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      detach(socket);
      closeQuietly(socket);
    }
    this.setStatus("closed");
  }

  private open(): void {
    const token = this.options.token();
    if (token === null) {
      this.setStatus("closed");
      return;
    }
    this.setStatus("connecting");
    const socket = this.options.connect(this.options.url, [BEARER_SUBPROTOCOL, token]);
    this.socket = socket;
    this.socketToken = token;
    socket.onopen = () => this.opened();
    socket.onmessage = (event) => this.received(event);
    socket.onclose = (event) => void this.closed(socket, event.code);
  }

  private opened(): void {
    const reopened = this.everOpened;
    this.everOpened = true;
    this.setStatus("open");
    this.stableTimer = setTimeout(() => {
      this.failures = 0;
    }, STABLE_AFTER_MS);
    if (reopened) {
      for (const listener of [...this.reconnectListeners]) {
        listener();
      }
    }
  }

  private received(event: MessageEvent): void {
    const message = parseMessage(event.data);
    if (message === null || this.seen.has(message.id)) {
      return;
    }
    this.remember(message.id);
    for (const listener of [...this.messageListeners]) {
      listener(message);
    }
  }

  private async closed(socket: SocketLike, code: number): Promise<void> {
    if (socket !== this.socket) {
      return;
    }
    this.socket = null;
    clearTimeout(this.stableTimer);
    this.setStatus("closed");
    if (code === TOKEN_REFUSED && (await this.hasFreshToken())) {
      if (this.running && this.socket === null) {
        this.failures += 1;
        // A token expiring is routine: reconnect at once, unless it keeps happening.
        this.retryIn(this.failures === 1 ? 0 : this.backoffMs());
      }
      return;
    }
    if (this.running) {
      this.failures += 1;
      this.retryIn(this.backoffMs());
    }
  }

  /** After a 4001: a token other than the refused one, refreshing the session if need be. */
  private async hasFreshToken(): Promise<boolean> {
    const current = this.options.token();
    if (current !== null && current !== this.socketToken) {
      return true;
    }
    return (await this.options.refreshToken()) !== null;
  }

  private retryIn(delayMs: number): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.running && this.socket === null) {
        this.open();
      }
    }, delayMs);
  }

  /** Exponential from FIRST_RETRY_MS up to MAX_RETRY_MS, with "equal jitter" (half fixed, half random). */
  private backoffMs(): number {
    const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.failures - 1));
    return ceiling / 2 + (ceiling / 2) * this.options.random();
  }

  private remember(id: string): void {
    this.seen.add(id);
    if (this.seen.size > SEEN_IDS_KEPT) {
      const oldest = this.seen.values().next().value;
      if (oldest !== undefined) {
        this.seen.delete(oldest);
      }
    }
  }

  private setStatus(status: LiveStatus): void {
    if (status === this.currentStatus) {
      return;
    }
    this.currentStatus = status;
    for (const listener of [...this.statusListeners]) {
      listener(status);
    }
  }
}

/** `ws:`/`wss:` URL of the live endpoint on this page's origin. */
export function liveUrl(origin: string = window.location.origin): string {
  return `${origin.replace(/^http/, "ws")}/api/v1/ws`;
}

function parseMessage(raw: unknown): LiveMessage | null {
  if (typeof raw !== "string") {
    return null;
  }
  try {
    const message: unknown = JSON.parse(raw);
    return isLiveMessage(message) ? message : null;
  } catch {
    return null;
  }
}

function isLiveMessage(value: unknown): value is LiveMessage {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const candidate = value as Record<string, unknown>;
  return typeof candidate.type === "string" && typeof candidate.id === "string" && "data" in candidate;
}

function subscribe<T>(listeners: Set<T>, listener: T): () => void {
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

function detach(socket: SocketLike): void {
  socket.onopen = null;
  socket.onmessage = null;
  socket.onclose = null;
  socket.onerror = null;
}

/** Close without the browser's "closed before the connection is established" warning. */
function closeQuietly(socket: SocketLike): void {
  if (socket.readyState === CONNECTING) {
    socket.onopen = () => socket.close(NORMAL_CLOSURE);
    socket.onerror = () => undefined;
    return;
  }
  socket.close(NORMAL_CLOSURE);
}
