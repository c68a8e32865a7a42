import { expect, test } from "./fixtures";
import { heading, logIn, openTasks } from "./ui";

test("the session survives a reload, and after logging out a reload stays logged out", async ({
  page,
  api,
}) => {
  const user = await api.registerUser("Ada Lovelace");
  const loginHeading = heading(page, "Log in");
  const logOut = page.getByRole("button", { name: "Log out", exact: true });
  await logIn(page, user);
  await openTasks(page);

  await page.reload();
  await expect(heading(page, "Tasks")).toBeVisible();
  await expect(logOut).toBeVisible();

  await logOut.click();
  await expect(loginHeading).toBeVisible();
  await expect(page).toHaveURL(/\/login(\?.*)?$/);

  await page.reload();
  await expect(loginHeading).toBeVisible();
  await page.goto("/tasks");
  await expect(loginHeading).toBeVisible();
  await expect(logOut).toHaveCount(0);
});
