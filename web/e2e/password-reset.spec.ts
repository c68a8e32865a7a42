import { expect, test } from "./fixtures";
import { mailDir } from "./env";
import { waitForPasswordReset } from "./mail";
import { heading, logIn } from "./ui";

const NEW_PASSWORD = "tr0ub4dor&3 but longer";

test("a forgotten password is reset with the emailed link", async ({ page, api, baseURL }) => {
  const user = await api.registerUser("Rita Reset");

  await page.goto("/login");
  await page.getByRole("link", { name: "Forgot password?", exact: true }).click();
  await expect(heading(page, "Reset your password")).toBeVisible();
  await page.getByLabel("Email", { exact: true }).fill(user.email);
  await page.getByRole("button", { name: "Send reset link", exact: true }).click();
  await expect(
    page.getByText("If an account exists for that address, we sent a reset link."),
  ).toBeVisible();

  const reset = await waitForPasswordReset(mailDir(), user.email);
  expect(new URL(reset.link).origin).toBe(new URL(baseURL ?? "").origin);
  expect(new URL(reset.link).searchParams.get("token")).toBe(reset.token);
  await page.goto(reset.link);
  await expect(heading(page, "Choose a new password")).toBeVisible();
  await page.getByLabel("New password", { exact: true }).fill(NEW_PASSWORD);
  const answer = page.waitForResponse(
    (response) =>
      new URL(response.url()).pathname === "/api/v1/auth/reset-password" &&
      response.request().method() === "POST",
  );
  await page.getByRole("button", { name: "Set password", exact: true }).click();
  expect((await answer).status()).toBe(204);

  await logIn(page, { email: user.email, password: NEW_PASSWORD });
  await expect(page).toHaveURL(/\/tasks$/);
});
