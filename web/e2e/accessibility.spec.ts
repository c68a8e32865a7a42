import AxeBuilder from "@axe-core/playwright";
import type { Page } from "@playwright/test";

import { adminCredentials } from "./env";
import { expect, test } from "./fixtures";
import { heading, logIn } from "./ui";

/** WCAG 2.1 A and AA, the level the app is built to. */
const WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

async function expectNoViolations(page: Page, name: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(WCAG_AA).analyze();
  const found = results.violations.map(
    (violation) =>
      `${violation.id} (${violation.impact}): ${violation.help} — ${violation.nodes
        .map((node) => node.target.join(" "))
        .join(", ")}`,
  );
  expect(found, `accessibility violations on ${name}`).toEqual([]);
}

test("the public pages have no WCAG AA violations", async ({ page }) => {
  for (const [path, title] of [
    ["/login", "Log in"],
    ["/register", "Create an account"],
    ["/forgot-password", "Reset your password"],
    ["/reset-password?token=example", "Choose a new password"],
  ] as const) {
    await page.goto(path);
    await expect(heading(page, title)).toBeVisible();
    await expectNoViolations(page, path);
  }
});

test("the signed-in pages have no WCAG AA violations, at desktop and phone width", async ({
  page,
  api,
}) => {
  const user = await api.registerUser("Grace Hopper");
  const task = await api.createTask(user, {
    title: "Check the contrast of every page",
    description: "Run axe on each page of the app.",
    priority: "high",
    tags: ["a11y"],
    due_at: new Date(Date.now() + 3 * 24 * 3600 * 1000).toISOString(),
  });
  await logIn(page, user);

  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 800 });
    for (const [path, title] of [
      ["/tasks", "Tasks"],
      [`/tasks/${task.id}`, task.title],
      ["/notifications", "Notifications"],
      ["/settings", "Settings"],
    ] as const) {
      await page.goto(path);
      await expect(heading(page, title)).toBeVisible();
      await expectNoViolations(page, `${path} at ${width}px`);
    }
  }
});

test("the admin pages have no WCAG AA violations", async ({ page }) => {
  await logIn(page, adminCredentials());

  for (const [path, title] of [
    ["/admin/users", "Users"],
    ["/admin/analytics", "Analytics"],
  ] as const) {
    await page.goto(path);
    await expect(heading(page, title)).toBeVisible();
    await page.waitForLoadState("networkidle");
    await expectNoViolations(page, path);
  }
});
