import { uniqueSuffix } from "./api";
import { expect, test } from "./fixtures";
import { LiveSocketWatch } from "./live";
import { logIn, openTask, openTasks, taskLink } from "./ui";

test("assigning by email reaches the assignee's open page without a reload", async ({
  page,
  newPage,
  api,
}) => {
  const owner = await api.registerUser("Ada Lovelace");
  const assignee = await api.registerUser("Grace Hopper");
  const task = await api.createTask(owner, { title: `Review the budget ${uniqueSuffix()}` });

  const assigneePage = await newPage();
  const assigneeLive = await LiveSocketWatch.start(assigneePage);
  await logIn(assigneePage, assignee);
  await openTasks(assigneePage);
  await assigneeLive.open();
  const badge = assigneePage.getByTestId("unread-badge");
  await expect(badge).toHaveCount(0);
  await expect(taskLink(assigneePage, task.title)).toHaveCount(0);

  await logIn(page, owner);
  await openTask(page, task);
  await page.getByLabel("Assignee email", { exact: true }).fill(assignee.email);
  await page.getByRole("button", { name: "Assign", exact: true }).click();
  await expect(page.getByText(`Assigned to ${assignee.name}`)).toBeVisible();

  await expect(taskLink(assigneePage, task.title)).toBeVisible({ timeout: 2_000 });
  await expect(badge).toHaveText("1");
});
