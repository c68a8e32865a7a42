import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Page } from "@playwright/test";
import type { ApiUser, Task, TaskmeshApi } from "./api";
import { adminCredentials, screenshotDir } from "./env";
import { expect, test } from "./fixtures";
import { heading, logIn, openTask, openTasks, taskLink } from "./ui";

/**
 * The screenshots of the docs (`make screenshots` writes them to docs/screenshots): each page
 * at a desktop and a phone width, with realistic data, and at phone width no sideways scroll.
 */

const WIDTHS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/** Recharts draws its lines and bars with a JavaScript animation of 1.5 s by default. */
const CHART_ANIMATION_MS = 1_600;

const DAY_MS = 24 * 60 * 60 * 1000;

function inDays(days: number): string {
  return new Date(Date.now() + days * DAY_MS).toISOString();
}

interface Workload {
  owner: ApiUser;
  assignee: ApiUser;
  /** The task whose detail page is shown (with a description, tags and a due date). */
  featured: Task;
  tasks: Task[];
}

/** A small team's week: tasks of every priority and status, with tags, due dates, an assignee. */
async function arrangeWorkload(api: TaskmeshApi): Promise<Workload> {
  const owner = await api.registerUser("Grace Hopper");
  const assignee = await api.registerUser("Alan Turing");
  const featured = await api.createTask(owner, {
    title: "Review the compiler release checklist",
    description:
      "Walk through every item before Friday's release: changelog, migration notes, " +
      "the benchmark results and the sign-off from the docs team.",
    priority: "urgent",
    status: "in_progress",
    due_at: inDays(1),
    tags: ["release", "compiler"],
  });
  const others = [
    await api.createTask(owner, {
      title: "Prepare the quarterly planning deck",
      priority: "high",
      due_at: inDays(3),
      tags: ["planning", "q3"],
      assignee_id: assignee.id,
    }),
    await api.createTask(owner, {
      title: "Book a venue for the team offsite",
      description: "Somewhere near the station, for 14 people, with a projector.",
      priority: "medium",
      due_at: inDays(12),
      tags: ["team", "events"],
    }),
    await api.createTask(owner, {
      title: "Update the onboarding guide",
      priority: "low",
      status: "in_progress",
      tags: ["docs"],
    }),
    await api.createTask(owner, {
      title: "Renew the TLS certificates",
      priority: "high",
      status: "done",
      due_at: inDays(-1),
      tags: ["ops", "security"],
    }),
  ];
  return { owner, assignee, featured, tasks: [featured, ...others] };
}

async function capture(
  page: Page,
  name: string,
  ready: (page: Page) => Promise<void>,
): Promise<void> {
  const directory = screenshotDir();
  await mkdir(directory, { recursive: true });
  for (const [label, size] of Object.entries(WIDTHS)) {
    await page.setViewportSize(size);
    await ready(page);
    if (label === "phone") {
      const overflow = await page.evaluate(
        () => document.documentElement.scrollWidth - window.innerWidth,
      );
      expect(overflow, `${name} scrolls sideways at ${size.width} px`).toBeLessThanOrEqual(0);
    }
    await page.screenshot({
      path: path.join(directory, `${name}-${label}.png`),
      fullPage: true,
      animations: "disabled",
    });
  }
}

/** Nothing on the page is still loading. */
async function settled(page: Page): Promise<void> {
  await expect(page.getByRole("status").filter({ hasText: /loading/i })).toHaveCount(0);
}

test("the task list", async ({ page, api }) => {
  const workload = await arrangeWorkload(api);
  await logIn(page, workload.owner);
  await openTasks(page);

  await capture(page, "tasks", async (page) => {
    for (const task of workload.tasks) await expect(taskLink(page, task.title)).toBeVisible();
    await settled(page);
  });
});

test("a task's detail page", async ({ page, api }) => {
  const { owner, assignee, featured } = await arrangeWorkload(api);
  await logIn(page, owner);
  await openTask(page, featured);
  // The page names an assignee it looked up by email: assign the way a user does.
  await page.getByLabel("Assignee email", { exact: true }).fill(assignee.email);
  await page.getByRole("button", { name: "Assign", exact: true }).click();

  await capture(page, "task-detail", async (page) => {
    await expect(page.getByText(`Assigned to ${assignee.name}`)).toBeVisible();
    await expect(page.getByLabel("Title", { exact: true })).toHaveValue(featured.title);
    await settled(page);
  });
});

test("the admin analytics page", async ({ page, api }) => {
  test.setTimeout(60_000);
  const { tasks } = await arrangeWorkload(api);
  const admin = await api.logIn(adminCredentials());
  // Analytics is fed by events and request records and may lag by up to 5 s.
  await expect
    .poll(async () => (await api.analyticsSummary(admin)).tasks_created_24h, { timeout: 15_000 })
    .toBeGreaterThanOrEqual(tasks.length);
  await expect
    .poll(async () => (await api.analyticsSummary(admin)).requests_24h, { timeout: 15_000 })
    .toBeGreaterThan(0);

  await logIn(page, adminCredentials());
  await page.goto("/admin/analytics");
  await expect(heading(page, "Analytics")).toBeVisible();

  await capture(page, "admin-analytics", async (page) => {
    await settled(page);
    // Why a fixed wait: the chart animates after its data arrived, and nothing marks its end.
    await page.waitForTimeout(CHART_ANIMATION_MS);
  });
});
