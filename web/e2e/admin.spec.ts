import { adminCredentials } from "./env";
import { expect, test } from "./fixtures";
import { heading, logIn, mainNav } from "./ui";

const ADMIN_PAGES = [
  { path: "/admin/users", link: "Users" },
  { path: "/admin/analytics", link: "Analytics" },
] as const;

test("a user who is no admin is not allowed on the admin pages and sees no links to them", async ({
  page,
  api,
}) => {
  const user = await api.registerUser("Ada Lovelace");
  await logIn(page, user);

  for (const { path, link } of ADMIN_PAGES) {
    await page.goto(path);
    await expect(heading(page, "Not allowed")).toBeVisible();
    await expect(heading(page, link)).toHaveCount(0);
    const nav = mainNav(page);
    await expect(nav.getByRole("link", { name: "Tasks", exact: true })).toBeVisible();
    for (const { link: adminLink } of ADMIN_PAGES) {
      await expect(nav.getByRole("link", { name: adminLink, exact: true })).toHaveCount(0);
    }
  }
});

test("the bootstrap admin reaches both admin pages from the navigation", async ({ page }) => {
  await logIn(page, adminCredentials());

  for (const { path, link } of ADMIN_PAGES) {
    await mainNav(page).getByRole("link", { name: link, exact: true }).click();
    await expect(page).toHaveURL(new RegExp(`${path}$`));
    await expect(heading(page, link)).toBeVisible();
    await expect(heading(page, "Not allowed")).toHaveCount(0);
  }
});
