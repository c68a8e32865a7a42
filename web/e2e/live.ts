import { expect, type Page } from "@playwright/test";

/** One message of the app's live socket, as the gateway sends it. */
export interface LiveMessage {
  type: string;
  data: { id?: string } & Record<string, unknown>;
  id: string;
  time: string;
}

const LIVE_PATH = "/api/v1/ws";

/**
 * Watches a page's live socket from outside the app: when its handshake completed and what
 * it received. A test that makes a change "elsewhere" first waits for the socket to be open,
 * since the gateway only pushes changes made after a socket opened; and a test can wait until
 * the page has heard of a change before acting on the page.
 *
 * Chromium reports the handshake's answer only over CDP (Playwright's WebSocket has no "open"
 * event); the frames come from Playwright's own WebSocket events.
 */
export class LiveSocketWatch {
  private readonly socketUrls = new Map<string, string>();
  /** Live sockets whose handshake succeeded and that have not closed since. */
  private readonly openSockets = new Set<string>();
  private readonly received: LiveMessage[] = [];

  private constructor(private readonly page: Page) {}

  /** Start watching; call before the page opens the app. */
  static async start(page: Page): Promise<LiveSocketWatch> {
    const watch = new LiveSocketWatch(page);
    const cdp = await page.context().newCDPSession(page);
    cdp.on("Network.webSocketCreated", ({ requestId, url }) => {
      watch.socketUrls.set(requestId, url);
    });
    cdp.on("Network.webSocketHandshakeResponseReceived", ({ requestId, response }) => {
      const url = watch.socketUrls.get(requestId);
      if (url && new URL(url).pathname === LIVE_PATH && response.status === 101) {
        watch.openSockets.add(requestId);
      }
    });
    cdp.on("Network.webSocketClosed", ({ requestId }) => {
      watch.openSockets.delete(requestId);
    });
    // A new document (a reload, page.goto) ends the old one's sockets without a close event.
    cdp.on("Page.frameNavigated", ({ frame }) => {
      if (frame.parentId === undefined) watch.openSockets.clear();
    });
    await cdp.send("Network.enable");
    await cdp.send("Page.enable");
    page.on("websocket", (socket) => {
      if (new URL(socket.url()).pathname !== LIVE_PATH) return;
      socket.on("framereceived", ({ payload }) => {
        if (typeof payload === "string") watch.received.push(JSON.parse(payload) as LiveMessage);
      });
    });
    return watch;
  }

  /** Wait until the page's live socket is open (the server pushes from then on). */
  async open(): Promise<void> {
    const message = `the live socket of ${this.page.url()} opens, one per tab`;
    await expect.poll(() => this.openSockets.size, { message }).toBe(1);
  }

  /** Wait until the page received a message about `taskId` of `type`; return it. */
  async taskMessage(type: string, taskId: string): Promise<LiveMessage> {
    const matches = () =>
      this.received.filter((message) => message.type === type && message.data.id === taskId);
    await expect
      .poll(() => matches().length, { message: `the page receives ${type} for task ${taskId}` })
      .toBeGreaterThan(0);
    const [message] = matches();
    if (!message) throw new Error(`no ${type} message for task ${taskId}`);
    return message;
  }
}
