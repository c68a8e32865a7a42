import { expect, test } from "./fixtures";
import { heading, pageTitle, submitLogin } from "./ui";

const LOGIN_URL = /\/login(\?.*)?$/;

test("a task's page without a session leads to the login page and back", async ({
  page,
  api,
}) => {
  const user = await api.registerUser("Ada Lovelace");
  const task = await api.createTask(user, { title: "Sharpen the pencils" });

  await page.goto(`/tasks/${task.id}`);
  await expect(page).toHaveURL(LOGIN_URL);
  await submitLogin(page, user);

  await expect(page).toHaveURL(new RegExp(`/tasks/${task.id}$`));
  await expect(pageTitle(page, task.title)).toBeVisible();
});

test("the settings page without a session leads to the login page and back", async ({
  page,
  api,
}) => {
  const user = await api.registerUser("Ada Lovelace");

  await page.goto("/settings");
  await expect(page).toHaveURL(LOGIN_URL);
  await submitLogin(page, user);

  await expect(page).toHaveURL(/\/settings$/);
  await expect(heading(page, "Settings")).toBeVisible();
});
