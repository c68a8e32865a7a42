import { expect, type Locator, type Page } from "@playwright/test";
import type { Credentials } from "./env";

/** A heading with exactly this text. */
export function heading(page: Page, name: string): Locator {
  return page.getByRole("heading", { name, exact: true });
}

/** The page's main heading (h1), which on a task's page is the task's title. */
export function pageTitle(page: Page, name: string): Locator {
  return page.getByRole("heading", { name, exact: true, level: 1 });
}

/** The header's navigation of a logged-in page. */
export function mainNav(page: Page): Locator {
  return page.getByRole("navigation", { name: "Main" });
}

/** The list of tasks on the Tasks page. */
export function taskList(page: Page): Locator {
  return page.getByRole("list", { name: "Tasks", exact: true });
}

/** The link to a task in the Tasks page's list. */
export function taskLink(page: Page, title: string): Locator {
  return taskList(page).getByRole("link", { name: title, exact: true });
}

/** Fill in and send the login form already on screen. */
export async function submitLogin(page: Page, credentials: Credentials): Promise<void> {
  await expect(heading(page, "Log in")).toBeVisible();
  await page.getByLabel("Email", { exact: true }).fill(credentials.email);
  await page.getByLabel("Password", { exact: true }).fill(credentials.password);
  await page.getByRole("button", { name: "Log in", exact: true }).click();
}

/** Log in through the login page; return once the app shows a logged-in page. */
export async function logIn(page: Page, credentials: Credentials): Promise<void> {
  await page.goto("/login");
  await submitLogin(page, credentials);
  await expect(page.getByRole("button", { name: "Log out", exact: true })).toBeVisible();
}

/** Open the Tasks page of a logged-in user and wait for its heading. */
export async function openTasks(page: Page): Promise<void> {
  await page.goto("/tasks");
  await expect(heading(page, "Tasks")).toBeVisible();
}

/** Open a task's detail page and wait until it shows the task. */
export async function openTask(page: Page, task: { id: string; title: string }): Promise<void> {
  await page.goto(`/tasks/${task.id}`);
  await expect(pageTitle(page, task.title)).toBeVisible();
}
