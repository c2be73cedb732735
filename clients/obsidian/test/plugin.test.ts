// The plugin against a live pool (OWP_URL, OWP_ADMIN_TOKEN from scripts/clients-test.sh),
// in the host stand-in of test/obsidian.ts: commands, views, settings and the feed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import OwpPoolPlugin from "../src/main.js";
import { PoolView } from "../src/view.js";
// the stand-in itself (the plugin imports it as "obsidian": one module in the bundle)
import { app, notices, requests, settings, TFile, type El } from "./obsidian.js";

const content = (view: PoolView): El => view.contentEl as unknown as El;

const url = process.env.OWP_URL ?? "";
const adminToken = process.env.OWP_ADMIN_TOKEN ?? "";
const suffix = randomBytes(4).toString("hex");
const repo = `vault/notes-${suffix}`;
const skill = `obsidian-${suffix}`;

async function plugin(stored: Record<string, string>): Promise<OwpPoolPlugin> {
  // each test's plugin opens its own view, as after a restart of the app
  app.leaves = [];
  const p = new OwpPoolPlugin(app as never, {} as never);
  (p as unknown as { stored: unknown }).stored = stored;
  await p.onload();
  return p;
}

async function command(p: OwpPoolPlugin, id: string): Promise<void> {
  const c = (p as unknown as { commands: Map<string, { callback: () => unknown }> }).commands.get(id);
  assert.ok(c, `command ${id}`);
  await c.callback();
}

async function until(check: () => boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("not in time");
    await new Promise((r) => setTimeout(r, 100));
  }
}

const loaded: OwpPoolPlugin[] = [];
after(() => loaded.forEach((p) => p.onunload()));

test("a maintainer: status, a task from a note, filtered tasks, requeue and cancel, the live feed", async () => {
  const p = await plugin({ url, adminToken, defaultRepo: repo });
  loaded.push(p);
  const r = await fetch(`${url}/v1/admin/repos`, {
    method: "POST",
    headers: { "x-admin-token": adminToken, "content-type": "application/json" },
    body: JSON.stringify({ repo, max_open_prs: 3 }),
  });
  assert.equal(r.status, 201);

  // a task from the current note: fields from the frontmatter, its id written back
  const note = new TFile(`Tasks/Fix ${suffix}.md`, `---\nskills: ${skill}\nsize: S\n---\nThe parser breaks.`, { skills: skill, size: "S" }, 25);
  app.active = note;
  const id = await p.createTaskFromNote();
  assert.ok(id && id.startsWith("t_"), notices.join("\n"));
  assert.equal(note.frontmatter?.owp_task_id, id);
  assert.equal(await p.createTaskFromNote(), id, "the same note again: the same task");
  assert.match(notices.at(-1) ?? "", /already there/);

  await command(p, "open-status");
  const view = app.workspace.getLeavesOfType("owp-pool-view")[0]?.view;
  assert.ok(view instanceof PoolView);
  assert.match(content(view).textContent, new RegExp(`${repo}: 0/3 open`));

  view.filter = { repo, skill };
  await view.show("tasks");
  assert.match(content(view).textContent, new RegExp(`Fix ${suffix} · ${repo} · ready`));
  view.filter = { repo, skill: "no-such-skill" };
  await view.show("tasks");
  assert.match(content(view).textContent, /no tasks match/);
  view.filter = { repo };
  await view.show("tasks");
  const [cancel] = content(view).find("button", "cancel");
  assert.ok(cancel);
  await cancel.click();
  assert.match(notices.at(-1) ?? "", new RegExp(`${id} cancelled`));
  assert.match(content(view).textContent, /cancelled/);

  // the feed saw the task arrive (and leave) through the state stream
  await until(() => p.activity.some((l) => /tasks (ready|cancelled)/.test(l)));
  await view.show("activity");
  assert.match(content(view).textContent, /connected:/);

  for (const tab of ["workers", "repos", "analytics"] as const) {
    await view.show(tab);
    assert.doesNotMatch(content(view).textContent, /auth_error|validation_error|internal_error/, tab);
  }
  assert.match(content(view).textContent, new RegExp(`${repo} \\(30d\\)`));
  assert.ok(notices.every((n) => !n.includes(adminToken)), "no token in a notice");
});

test("a worker: register from settings, heartbeat, claim and report from the view", async () => {
  const p = await plugin({ url, adminToken, workerName: `vault-${suffix}`, workerSkills: skill });
  loaded.push(p);
  await command(p, "register-worker");
  assert.match(p.settings.workerId, /^w_/);
  const stored = (p as unknown as { stored: Record<string, string> }).stored;
  assert.equal(stored.workerToken, p.settings.workerToken, "the token is kept by the data API");
  assert.ok(notices.every((n) => !n.includes(p.settings.workerToken)), "never shown");
  // the settings tab masks tokens
  const tab = (p as unknown as { settingTabs: { display(): void }[] }).settingTabs[0];
  tab?.display();
  const admin = settings.filter((s) => s.name === "Admin token").at(-1);
  assert.equal(admin?.text?.inputEl.type, "password");

  assert.equal(await p.heartbeat(), true);
  assert.match(notices.at(-1) ?? "", /heartbeat, 0 active leases/);

  const created = await fetch(`${url}/v1/admin/tasks`, {
    method: "POST",
    headers: { "x-admin-token": adminToken, "content-type": "application/json" },
    body: JSON.stringify({ repo, title: `work ${suffix}`, required_skills: [skill] }),
  });
  const { task_id } = (await created.json()) as { task_id: string };
  await command(p, "claim");
  const view = app.workspace.getLeavesOfType("owp-pool-view")[0]?.view;
  assert.ok(view instanceof PoolView);
  assert.equal(view.tab, "work");
  assert.deepEqual(view.leases.map((l) => l.task_id), [task_id]);
  const [done] = content(view).find("button", "completed");
  assert.ok(done);
  await done.click();
  assert.match(notices.at(-1) ?? "", new RegExp(`${task_id} is completed`));
  assert.ok(requests.includes(`POST /v1/tasks/${task_id}/status`), "through requestUrl");

  // registering twice is refused, not a second worker
  await command(p, "register-worker");
  assert.match(notices.at(-1) ?? "", /already registered/);
});

test("a wrong admin token is an auth_error in the view, not a crash", async () => {
  const p = await plugin({ url, adminToken: "not-the-token" });
  loaded.push(p);
  await command(p, "open-status");
  const view = app.workspace.getLeavesOfType("owp-pool-view")[0]?.view;
  assert.ok(view instanceof PoolView);
  assert.match(content(view).textContent, /auth_error/);
});
