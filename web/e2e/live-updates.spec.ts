import { uniqueSuffix } from "./api";
import { expect, test } from "./fixtures";
import { LiveSocketWatch } from "./live";
import { logIn, openTasks, taskLink } from "./ui";

/** "Live" means within about a second of the change; the assertion allows some slack. */
const LIVE_TIMEOUT_MS = 2_000;

test("a task the same user creates through the API appears in the open list live", async ({
  page,
  api,
}) => {
  const user = await api.registerUser("Ada Lovelace");
  const live = await LiveSocketWatch.start(page);
  await logIn(page, user);
  await openTasks(page);
  await live.open();

  const task = await api.createTask(user, { title: `Call the plumber ${uniqueSuffix()}` });

  await expect(taskLink(page, task.title)).toBeVisible({ timeout: LIVE_TIMEOUT_MS });
});

test("a task quick-added in another tab appears in the first tab live", async ({ page, api }) => {
  const user = await api.registerUser("Ada Lovelace");
  const title = `Water the plants ${uniqueSuffix()}`;
  const live = await LiveSocketWatch.start(page);
  await logIn(page, user);
  await openTasks(page);
  await live.open();

  const otherTab = await page.context().newPage();
  await openTasks(otherTab);
  await otherTab.getByLabel("New task title", { exact: true }).fill(title);
  await otherTab.getByRole("button", { name: "Add task", exact: true }).click();
  await expect(taskLink(otherTab, title)).toBeVisible();

  await expect(taskLink(page, title)).toBeVisible({ timeout: LIVE_TIMEOUT_MS });
});
