import {
  test as base,
  expect,
  type BrowserContext,
  type ConsoleMessage,
  type Page,
} from "@playwright/test";
import { TaskmeshApi } from "./api";

/**
 * A request that fails on purpose, for which Chromium prints a console error of its own
 * ("Failed to load resource: the server responded with a status of 412 (...)"): the only
 * console errors a test tolerates.
 */
export interface ExpectedFailedRequest {
  status: number;
  /** Matched against the path of the request's URL (no query). */
  path: RegExp;
}

const FAILED_RESOURCE = /^Failed to load resource: the server responded with a status of (\d{3})\b/;

/**
 * Collects console errors and uncaught page errors of every watched browser context; a test
 * with any left at its end fails ("no console errors" is a requirement of the web app).
 */
export class BrowserErrors {
  private readonly seen: string[] = [];
  private readonly expected: ExpectedFailedRequest[] = [];

  watch(context: BrowserContext): void {
    context.on("console", (message) => {
      if (message.type() === "error" && !this.isExpected(message)) {
        this.seen.push(`console error at ${message.location().url}: ${message.text()}`);
      }
    });
    context.on("weberror", (webError) => {
      const error = webError.error();
      const where = webError.page()?.url() ?? "a page";
      this.seen.push(`uncaught error on ${where}: ${error.stack ?? error.message}`);
    });
  }

  /** Tolerate the console error of a request the test makes fail on purpose. */
  expectFailedRequest(request: ExpectedFailedRequest): void {
    this.expected.push(request);
  }

  get errors(): readonly string[] {
    return this.seen;
  }

  private isExpected(message: ConsoleMessage): boolean {
    const status = FAILED_RESOURCE.exec(message.text())?.[1];
    const url = message.location().url;
    if (status === undefined || !url) return false;
    const path = new URL(url).pathname;
    return this.expected.some(
      (expected) => expected.status === Number(status) && expected.path.test(path),
    );
  }
}

interface Fixtures {
  /** The console and page errors of this test's browser contexts (checked after the test). */
  browserErrors: BrowserErrors;
  /** A page in a context of its own (another user, or nobody), watched like `page`. */
  newPage: () => Promise<Page>;
  /** The public API, for arranging what a test needs. */
  api: TaskmeshApi;
}

export const test = base.extend<Fixtures>({
  browserErrors: [
    async ({ context }, provide) => {
      const errors = new BrowserErrors();
      errors.watch(context);
      await provide(errors);
      expect(errors.errors, "console errors or uncaught errors in the browser").toEqual([]);
    },
    { auto: true },
  ],
  newPage: async ({ browser, baseURL, viewport, browserErrors }, provide) => {
    const contexts: BrowserContext[] = [];
    await provide(async () => {
      const context = await browser.newContext({ baseURL, viewport });
      contexts.push(context);
      browserErrors.watch(context);
      return context.newPage();
    });
    await Promise.all(contexts.map((context) => context.close()));
  },
  api: async ({ request }, provide) => {
    await provide(new TaskmeshApi(request));
  },
});

export { expect };
