import path from "node:path";

/** Settings the suite passes in the environment (tests/web/test_browser.py sets them all). */

function required(name: string, meaning: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: it must be ${meaning}.`);
  }
  return value;
}

export interface Credentials {
  email: string;
  password: string;
}

/** The bootstrap admin the suite was started with (BOOTSTRAP_ADMIN_EMAIL/PASSWORD). */
export function adminCredentials(): Credentials {
  return {
    email: required("ADMIN_EMAIL", "the suite's BOOTSTRAP_ADMIN_EMAIL"),
    password: required("ADMIN_PASSWORD", "the suite's BOOTSTRAP_ADMIN_PASSWORD"),
  };
}

/** Where the suite's mail catcher writes one .eml file per message. */
export function mailDir(): string {
  return required("MAIL_DIR", "the suite's mail catcher directory (localrun.json's mail_dir)");
}

/** Where the screenshots for the docs go: SCREENSHOT_DIR, else web/test-results/screenshots. */
export function screenshotDir(): string {
  const configured = process.env.SCREENSHOT_DIR;
  return configured
    ? path.resolve(configured)
    : path.resolve(import.meta.dirname, "..", "test-results", "screenshots");
}
