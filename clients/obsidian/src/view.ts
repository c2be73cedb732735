// The pool's view: status, tasks (filters, detail, requeue/cancel), workers (tier,
// reputation), repositories, analytics, the worker's leases and the live activity feed.
import { ItemView, Notice, type WorkspaceLeaf } from "obsidian";
import type { Lease, PoolError, Result, StateResponse, TaskView } from "@owp/protocol";
import type { Pool, TaskFilter } from "./pool.js";
import { changes } from "./activity.js";

export const VIEW_TYPE = "owp-pool-view";
export const TABS = ["status", "tasks", "workers", "repos", "analytics", "work", "activity"] as const;
export type Tab = (typeof TABS)[number];

export interface ViewHost {
  pool(): Pool;
  /** the activity lines so far, newest first */
  activity: string[];
}

export class PoolView extends ItemView {
  tab: Tab = "status";
  filter: TaskFilter = {};
  leases: Lease[] = [];
  private body!: HTMLElement;

  constructor(
    leaf: WorkspaceLeaf,
    private readonly host: ViewHost,
  ) {
    super(leaf);
  }

  getViewType(): string {
    return VIEW_TYPE;
  }

  getDisplayText(): string {
    return "OWP Pool";
  }

  getIcon(): string {
    return "git-pull-request";
  }

  async onOpen(): Promise<void> {
    const root = this.contentEl;
    root.empty();
    const bar = root.createDiv({ cls: "owp-tabs" });
    for (const tab of TABS) {
      const button = bar.createEl("button", { text: tab, cls: "owp-tab" });
      button.addEventListener("click", () => void this.show(tab));
    }
    this.body = root.createDiv({ cls: "owp-body" });
    await this.show(this.tab);
  }

  /** Shows a tab, loading what it needs; an error is shown in place, in the pool's words. */
  async show(tab: Tab): Promise<void> {
    this.tab = tab;
    const el = this.body;
    el.empty();
    el.createEl("h3", { text: tab });
    try {
      await RENDER[tab](this, el);
    } catch (error) {
      el.createDiv({ cls: "owp-error", text: describe(error) });
    }
  }

  pool(): Pool {
    return this.host.pool();
  }

  activity(): string[] {
    return this.host.activity;
  }
}

type Render = (view: PoolView, el: HTMLElement) => Promise<void>;

const RENDER: Record<Tab, Render> = {
  async status(view, el) {
    const state = value(await view.pool().state());
    renderState(el, state);
  },
  async tasks(view, el) {
    const tasks = value(await view.pool().tasks(view.filter));
    const f = view.filter;
    el.createDiv({ cls: "owp-filter", text: `repo ${f.repo ?? "any"} · status ${f.status ?? "any"} · skill ${f.skill ?? "any"}` });
    const list = el.createEl("ul", { cls: "owp-tasks" });
    for (const task of tasks) renderTask(view, list.createEl("li"), task);
    if (tasks.length === 0) el.createDiv({ text: "no tasks match" });
  },
  async workers(view, el) {
    const workers = value(await view.pool().workers()).workers;
    const list = el.createEl("ul");
    for (const w of workers) {
      list.createEl("li", {
        text: `${w.name} (${w.worker_id}) · ${w.trust_tier} · ${w.online ? "online" : "offline"} · ${w.live_leases} leases · skills ${w.skills.join(", ") || "none"}`,
      });
    }
    if (workers[0]) {
      const rep = value(await view.pool().reputation(workers[0].worker_id));
      el.createDiv({ text: `${workers[0].name}: reputation ${rep.reputation_score}` });
    }
  },
  async repos(view, el) {
    const repos = value(await view.pool().repos()).repositories;
    const list = el.createEl("ul");
    for (const r of repos) list.createEl("li", { text: `${r.repo} · review budget ${r.max_open_prs}` });
  },
  async analytics(view, el) {
    // the tasks filter's repo, else the first ten
    const names = view.filter.repo
      ? [view.filter.repo]
      : value(await view.pool().repos()).repositories.slice(0, 10).map((r) => r.repo);
    for (const repo of names) {
      const a = value(await view.pool().analytics(repo, "30d"));
      const m = a.metrics;
      el.createDiv({
        cls: "owp-analytics",
        text: `${repo} (${a.period}): ${m.tasks_created} created, ${m.tasks_completed} completed, ${m.tasks_merged} merged, PR merge rate ${percent(m.pr_merge_rate)}`,
      });
    }
  },
  async work(view, el) {
    if (!view.pool().worker) {
      el.createDiv({ text: "Not registered: run the command “Register as a worker”." });
      return;
    }
    view.leases = value(await view.pool().claim()).leases;
    const list = el.createEl("ul");
    for (const lease of view.leases) {
      const waiting = lease.awaiting_approval ? " · awaiting a maintainer's approval" : "";
      const li = list.createEl("li", { text: `${lease.title} (${lease.repo}) · ${lease.status}${waiting}` });
      // until approved, the only report that lands is released
      const choices = lease.awaiting_approval ? (["released"] as const) : (["in_progress", "completed", "released"] as const);
      for (const status of choices) {
        const b = li.createEl("button", { text: status });
        b.addEventListener("click", async () => {
          const r = await view.pool().report(lease, status);
          new Notice(r.error ? `OWP: ${describe(r.error)}` : `OWP: ${lease.task_id} is ${r.data.status}`);
          await view.show("work");
        });
      }
    }
    if (view.leases.length === 0) el.createDiv({ text: "no leases: nothing ready for your skills, or no free capacity" });
  },
  async activity(view, el) {
    const list = el.createEl("ul", { cls: "owp-activity" });
    for (const line of view.activity().slice(0, 200)) list.createEl("li", { text: line });
    if (view.activity().length === 0) el.createDiv({ text: "waiting for the pool's state stream…" });
  },
};

function renderState(el: HTMLElement, s: StateResponse): void {
  el.createDiv({ text: `workers online ${s.workers_online} of ${s.workers_total}` });
  el.createDiv({
    text: `tasks: ${s.tasks_ready} ready, ${s.tasks_leased} leased, ${s.tasks_in_progress} in progress, ${s.tasks_pr_opened} PRs open, ${s.tasks_merged} merged, ${s.tasks_failed} failed`,
  });
  for (const r of s.repositories) el.createDiv({ cls: "owp-budget", text: `${r.repo}: ${r.current_open_prs}/${r.max_open_prs} open` });
  el.createDiv({ text: `scheduler leader: ${s.scheduler.leader ?? "none"}` });
}

function renderTask(view: PoolView, li: HTMLElement, task: TaskView): void {
  li.createSpan({ text: `${task.title} · ${task.repo} · ${task.status} · p${task.priority} · ${task.required_skills.join(", ")}` });
  const detail = li.createEl("button", { text: "detail" });
  detail.addEventListener("click", async () => {
    const d = await view.pool().task(task.task_id);
    new Notice(d.error ? `OWP: ${describe(d.error)}` : `${d.data.title}: ${d.data.status}, attempt ${d.data.attempt}`);
  });
  for (const action of ["requeue", "cancel"] as const) {
    const b = li.createEl("button", { text: action });
    b.addEventListener("click", async () => {
      const r = action === "requeue" ? await view.pool().requeue(task.task_id) : await view.pool().cancel(task.task_id);
      const done = action === "requeue" ? "requeued" : "cancelled";
      new Notice(r.error ? `OWP: ${describe(r.error)}` : `OWP: ${task.task_id} ${done}`);
      await view.show("tasks");
    });
  }
}

/** The feed's lines for a new state (newest first), kept to 200. */
export function record(activity: string[], before: StateResponse | null, after: StateResponse, at: Date): void {
  const time = at.toISOString().slice(11, 19);
  for (const line of changes(before, after)) activity.unshift(`${time} ${line}`);
  activity.splice(200);
}

function value<T>(result: Result<T>): T {
  if (result.error) throw result.error;
  return result.data as T;
}

function percent(x: number | null | undefined): string {
  return typeof x === "number" ? `${Math.round(x * 100)} %` : "n/a";
}

/** An error in the pool's words, never with a token in it (the pool never echoes one). */
export function describe(error: unknown): string {
  const e = error as Partial<PoolError>;
  if (e && typeof e.code === "string") return `${e.code}: ${e.message ?? ""}${e.details ? ` (${e.details})` : ""}`;
  return error instanceof Error ? error.message : String(error);
}
