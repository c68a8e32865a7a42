import { PASSWORD, uniqueEmail, uniqueSuffix } from "./api";
import { expect, test } from "./fixtures";
import { heading, taskLink } from "./ui";

test("a new account quick-adds a task and finds it in its list", async ({ page }) => {
  const email = uniqueEmail();
  const title = `Write the release notes ${uniqueSuffix()}`;

  await page.goto("/login");
  await page.getByRole("link", { name: "Create an account", exact: true }).click();
  await expect(heading(page, "Create an account")).toBeVisible();
  await page.getByLabel("Name", { exact: true }).fill("Ada Lovelace");
  await page.getByLabel("Email", { exact: true }).fill(email);
  await page.getByLabel("Password", { exact: true }).fill(PASSWORD);
  await page.getByRole("button", { name: "Create account", exact: true }).click();

  await expect(heading(page, "Tasks")).toBeVisible();
  await expect(page).toHaveURL(/\/tasks$/);

  await page.getByLabel("New task title", { exact: true }).fill(title);
  await page.getByRole("button", { name: "Add task", exact: true }).click();
  await expect(taskLink(page, title)).toBeVisible();

  await page.reload();
  await expect(taskLink(page, title)).toBeVisible();
});
