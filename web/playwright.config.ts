import { accessSync, constants } from "node:fs";
import path from "node:path";
import { defineConfig } from "@playwright/test";

/**
 * Browser end-to-end tests against a running suite (tests/web/test_browser.py starts one and
 * runs `npx playwright test` with the environment below). Playwright never downloads a
 * browser here: the tests drive the system's Chromium.
 *
 * TASKMESH_URL    the suite's public URL (required)
 * CHROMIUM_PATH   the Chromium executable (default: `chromium` on PATH)
 * ADMIN_EMAIL / ADMIN_PASSWORD, MAIL_DIR, SCREENSHOT_DIR: read by the specs that need them.
 */

const baseURL = process.env.TASKMESH_URL;
if (!baseURL) {
  throw new Error(
    "TASKMESH_URL is not set: the browser tests need a running taskmesh suite. " +
      "Run them through `.venv/bin/pytest tests/web` (which starts one), or start `make run` " +
      "and set TASKMESH_URL=http://127.0.0.1:8000.",
  );
}

/** The first of `names` found as an executable file on PATH. */
function findOnPath(names: readonly string[]): string | undefined {
  const directories = (process.env.PATH ?? "").split(path.delimiter).filter(Boolean);
  for (const name of names) {
    for (const directory of directories) {
      const candidate = path.join(directory, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // Not in this directory: look in the next one.
      }
    }
  }
  return undefined;
}

const executablePath = process.env.CHROMIUM_PATH || findOnPath(["chromium", "chromium-browser"]);
if (!executablePath) {
  throw new Error(
    "No Chromium found: set CHROMIUM_PATH or put `chromium` on PATH (Debian: apt-get install " +
      "chromium). Playwright's own browser downloads are not used.",
  );
}

export default defineConfig({
  testDir: "e2e",
  outputDir: "test-results/artifacts",
  fullyParallel: false,
  // Two cores run the whole suite and the browser: one test at a time keeps timings honest.
  workers: 1,
  retries: 0,
  forbidOnly: true,
  timeout: 30_000,
  expect: { timeout: 5_000 },
  reporter: [["list"], ["json", { outputFile: "test-results/results.json" }]],
  use: {
    baseURL,
    headless: true,
    viewport: { width: 1280, height: 800 },
    actionTimeout: 10_000,
    navigationTimeout: 15_000,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    {
      name: "chromium",
      use: { browserName: "chromium", launchOptions: { executablePath } },
    },
  ],
});
