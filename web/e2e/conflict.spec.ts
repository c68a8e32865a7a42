import { expect, test } from "./fixtures";
import { LiveSocketWatch } from "./live";
import { logIn, openTask, pageTitle } from "./ui";

test("saving over a change made elsewhere reports the conflict and reloads the task", async ({
  page,
  api,
  browserErrors,
}) => {
  const user = await api.registerUser("Ada Lovelace");
  const task = await api.createTask(user, { title: "Draft the budget" });
  const live = await LiveSocketWatch.start(page);
  await logIn(page, user);
  await openTask(page, task);
  const title = page.getByLabel("Title", { exact: true });
  await expect(title).toHaveValue(task.title);
  await live.open();

  const changed = await api.updateTask(user, task.id, { title: "Budget, revised by Grace" });
  // The page hears of the change before it is edited: the edit then races nothing.
  await live.taskMessage("task.updated", task.id);
  await title.fill("Budget, my own version");
  const taskPath = new RegExp(`^/api/v1/tasks/${task.id}$`);
  browserErrors.expectFailedRequest({ status: 412, path: taskPath });
  await page.getByRole("button", { name: "Save changes", exact: true }).click();

  await expect(
    page.getByRole("alert").filter({ hasText: "This task was changed elsewhere" }),
  ).toBeVisible();
  await page.getByRole("button", { name: "Reload task", exact: true }).click();
  await expect(title).toHaveValue(changed.title);
  await expect(pageTitle(page, changed.title)).toBeVisible();
});
