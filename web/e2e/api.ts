import { randomUUID } from "node:crypto";
import { expect, type APIRequestContext, type APIResponse } from "@playwright/test";
import type { components } from "../src/api/generated/schema";
import type { Credentials } from "./env";

export type Task = components["schemas"]["Task"];
/** A task to create: the title, and any other field the API would otherwise default. */
export type NewTask = Pick<components["schemas"]["TaskCreate"], "title"> &
  Partial<components["schemas"]["TaskCreate"]>;
export type TaskPatch = components["schemas"]["TaskPatch"];
export type Summary = components["schemas"]["Summary"];
type RegisterResponse = components["schemas"]["RegisterResponse"];
type Tokens = components["schemas"]["Tokens"];

/** The password of every account the browser tests register. */
export const PASSWORD = "correct horse battery staple";

/** An account registered through the API, with an access token of its own session. */
export interface ApiUser extends Credentials {
  id: string;
  name: string;
  token: string;
}

/** A caller of the public API that acts with an access token. */
export interface Caller {
  token: string;
}

/** A fresh address nobody has registered (tests never share accounts), after `name` if given. */
export function uniqueEmail(name = "web e2e"): string {
  const local = name.toLowerCase().replace(/[^a-z0-9]+/g, ".").replace(/^\.|\.$/g, "");
  return `${local}.${randomUUID().slice(0, 8)}@example.com`;
}

/** A short random suffix that makes titles unique within a run. */
export function uniqueSuffix(): string {
  return randomUUID().slice(0, 8);
}

async function json<T>(response: APIResponse, what: string): Promise<T> {
  expect(response.ok(), `${what} answered ${response.status()}: ${await response.text()}`).toBe(
    true,
  );
  return (await response.json()) as T;
}

function bearer(caller: Caller): Record<string, string> {
  return { Authorization: `Bearer ${caller.token}` };
}

/** The public API through the suite's URL, for arranging what a test needs. */
export class TaskmeshApi {
  constructor(private readonly request: APIRequestContext) {}

  async registerUser(name: string): Promise<ApiUser> {
    const email = uniqueEmail(name);
    const response = await this.request.post("/api/v1/auth/register", {
      data: { email, password: PASSWORD, name },
    });
    const body = await json<RegisterResponse>(response, "register");
    return { id: body.user.id, email, password: PASSWORD, name, token: body.access_token };
  }

  async logIn(credentials: Credentials): Promise<Caller> {
    const response = await this.request.post("/api/v1/auth/login", {
      data: { email: credentials.email, password: credentials.password },
    });
    const tokens = await json<Tokens>(response, "login");
    return { token: tokens.access_token };
  }

  async createTask(caller: Caller, task: NewTask): Promise<Task> {
    const response = await this.request.post("/api/v1/tasks", {
      data: task,
      headers: bearer(caller),
    });
    return json<Task>(response, "create task");
  }

  async updateTask(caller: Caller, taskId: string, patch: TaskPatch): Promise<Task> {
    const response = await this.request.patch(`/api/v1/tasks/${taskId}`, {
      data: patch,
      headers: bearer(caller),
    });
    return json<Task>(response, "update task");
  }

  async analyticsSummary(admin: Caller): Promise<Summary> {
    const response = await this.request.get("/api/v1/analytics/summary", {
      headers: bearer(admin),
    });
    return json<Summary>(response, "analytics summary");
  }
}
