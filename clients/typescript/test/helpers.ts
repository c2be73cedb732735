// What the tests share: the live pool (OWP_URL, OWP_ADMIN_TOKEN, from
// scripts/clients-test.sh) and fixtures that keep each test's tasks its own (a repo and a
// skill no other test uses, so no other test's worker can claim them).
import { randomBytes } from "node:crypto";
import { createPoolClient, unwrap, call, PoolWorker, type PoolClient } from "../src/index.js";

export const baseUrl = process.env.OWP_URL ?? "http://127.0.0.1:8787";
export const adminToken = process.env.OWP_ADMIN_TOKEN ?? "";
if (!adminToken) throw new Error("OWP_ADMIN_TOKEN must name the live pool's admin token");

export function admin(): PoolClient {
  return createPoolClient({ baseUrl, adminToken });
}

export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString("hex")}`;
}

/** A fresh repo (on GitHub, so PR links must be its pull requests) and a skill of its own. */
export async function fixture(maxOpenPrs = 10): Promise<{ repo: string; skill: string }> {
  const repo = `sdk/${unique("repo")}`;
  const skill = unique("skill");
  unwrap(await call(admin().POST("/v1/admin/repos", { body: { repo, max_open_prs: maxOpenPrs } })));
  return { repo, skill };
}

export async function createTask(repo: string, skill: string, title = "a task"): Promise<string> {
  const created = unwrap(
    await call(admin().POST("/v1/admin/tasks", { body: { repo, title, required_skills: [skill], estimate_points: 1 } })),
  );
  if (!("task_id" in created)) throw new Error("one task answers one task_id");
  return created.task_id;
}

export async function registerWorker(skill: string, name = "sdk-test"): Promise<PoolWorker> {
  const { worker } = unwrap(
    await PoolWorker.register({ baseUrl }, { name, skills: [skill], max_concurrent_tasks: 2, capacity_points: 5 }),
  );
  return worker;
}

export async function taskStatus(taskId: string): Promise<string> {
  const task = unwrap(await call(admin().GET("/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } })));
  return task.status;
}

/** Polls `check` until it holds or `ms` pass. */
export async function eventually(check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("condition not met in time");
}
