// OWP Pool in Obsidian: settings, the pool view, commands for a maintainer (status, tasks,
// tasks from the current note) and for a worker (register, heartbeat, claim), and the live
// activity feed from the state stream.
import { Notice, Plugin, TFile, requestUrl, type WorkspaceLeaf } from "obsidian";
import { PoolWorker, type StateResponse } from "@owp/protocol";
import { Pool } from "./pool.js";
import { taskFromNote } from "./note-task.js";
import { readStateStream } from "./activity.js";
import { DEFAULT_SETTINGS, loadSettings, PoolSettingTab, type PoolSettings } from "./settings.js";
import { describe, PoolView, record, VIEW_TYPE, type Tab } from "./view.js";
import { requestUrlFetch } from "./transport.js";

export default class OwpPoolPlugin extends Plugin {
  settings: PoolSettings = { ...DEFAULT_SETTINGS };
  activity: string[] = [];
  private lastState: StateResponse | null = null;
  private feed: AbortController | null = null;
  private cachedPool: Pool | undefined;
  readonly fetcher = requestUrlFetch(requestUrl);

  async onload(): Promise<void> {
    this.settings = loadSettings(await this.loadData());
    this.addSettingTab(new PoolSettingTab(this.app, this));
    this.registerView(VIEW_TYPE, (leaf) => new PoolView(leaf, this));
    this.addRibbonIcon("git-pull-request", "OWP Pool", () => void this.open("status"));
    const views: [string, string, Tab][] = [
      ["open-status", "Show pool status", "status"],
      ["open-tasks", "Show tasks", "tasks"],
      ["open-workers", "Show workers", "workers"],
      ["open-repos", "Show repositories", "repos"],
      ["open-analytics", "Show analytics", "analytics"],
      ["open-work", "Show my leases", "work"],
      ["open-activity", "Show live activity", "activity"],
    ];
    for (const [id, name, tab] of views) this.addCommand({ id, name, callback: () => this.open(tab) });
    this.addCommand({ id: "create-task-from-note", name: "Create a task from the current note", callback: () => this.createTaskFromNote() });
    this.addCommand({ id: "register-worker", name: "Register as a worker", callback: () => this.registerWorker() });
    this.addCommand({ id: "heartbeat", name: "Send a heartbeat", callback: () => this.heartbeat() });
    this.addCommand({ id: "claim", name: "Claim work", callback: () => this.open("work") });
    this.startFeed();
  }

  onunload(): void {
    this.feed?.abort();
  }

  async saveSettings(): Promise<void> {
    await this.saveData(this.settings);
    // the clients were built for the old settings
    this.cachedPool = undefined;
    // a new URL or token: the feed follows it
    this.startFeed();
  }

  /** The clients for the current settings, built once per change of them. */
  pool(): Pool {
    this.cachedPool ??= new Pool(this.settings, this.fetcher);
    return this.cachedPool;
  }

  /** Opens (or focuses) the pool view on a tab. */
  async open(tab: Tab): Promise<PoolView | null> {
    let leaf: WorkspaceLeaf | null = this.app.workspace.getLeavesOfType(VIEW_TYPE)[0] ?? null;
    if (!leaf) {
      leaf = this.app.workspace.getRightLeaf(false);
      if (!leaf) return null;
      await leaf.setViewState({ type: VIEW_TYPE, active: true });
    }
    await this.app.workspace.revealLeaf(leaf);
    const view = leaf.view instanceof PoolView ? leaf.view : null;
    await view?.show(tab);
    return view;
  }

  /** The current note's frontmatter and body as a task; its id goes back into the note. */
  async createTaskFromNote(): Promise<string | null> {
    const file = this.app.workspace.getActiveFile();
    if (!(file instanceof TFile)) return this.fail("open a note first");
    const cache = this.app.metadataCache.getFileCache(file);
    const text = await this.app.vault.read(file);
    const end = cache?.frontmatterPosition?.end.offset ?? 0;
    const made = taskFromNote(cache?.frontmatter, text.slice(end), file.path, this.settings.defaultRepo);
    if ("error" in made) return this.fail(made.error);
    const created = await this.pool().createTask(made.task);
    if (created.error) return this.fail(describe(created.error));
    const id = "task_id" in created.data ? created.data.task_id : null;
    if (!id) return this.fail("the pool answered no task id");
    await this.app.fileManager.processFrontMatter(file, (fm: Record<string, unknown>) => {
      fm.owp_task_id = id;
    });
    new Notice(`OWP: ${created.data.created ? "created" : "already there:"} ${id}`);
    return id;
  }

  async registerWorker(): Promise<string | null> {
    if (this.settings.workerToken) return this.fail(`already registered as ${this.settings.workerId}`);
    const skills = this.settings.workerSkills.split(",").map((s) => s.trim()).filter(Boolean);
    const result = await PoolWorker.register(
      { baseUrl: this.settings.url, fetch: this.fetcher },
      { name: this.settings.workerName || "obsidian", skills },
    );
    if (result.error) return this.fail(describe(result.error));
    this.settings.workerToken = result.data.registration.token;
    this.settings.workerId = result.data.registration.worker_id;
    await this.saveSettings();
    new Notice(`OWP: registered as ${this.settings.workerId}`);
    return this.settings.workerId;
  }

  async heartbeat(): Promise<boolean> {
    try {
      const beat = await this.pool().heartbeat();
      if (beat.error) return this.fail(describe(beat.error)) !== null;
      new Notice(`OWP: heartbeat, ${beat.data.active_leases} active leases`);
      return true;
    } catch (error) {
      return this.fail(describe(error)) !== null;
    }
  }

  /** The state stream into the activity feed while an admin token is set; reconnects
   * (another replica may answer) after each end. Where the stream cannot be read (the app's
   * origin is not among the pool's OWP_CORS_ORIGINS), the state is polled instead. */
  private startFeed(): void {
    this.feed?.abort();
    if (!this.settings.adminToken) return;
    const feed = new AbortController();
    this.feed = feed;
    const { url, adminToken } = this.settings;
    void (async () => {
      while (!feed.signal.aborted) {
        try {
          await readStateStream(url, adminToken, (state) => this.onState(state), feed.signal);
        } catch {
          if (feed.signal.aborted) return;
          const polled = await this.pool().state();
          if (polled.data) this.onState(polled.data);
        }
        await new Promise((r) => setTimeout(r, 5_000));
      }
    })();
  }

  private onState(state: StateResponse): void {
    record(this.activity, this.lastState, state, new Date());
    this.lastState = state;
    for (const leaf of this.app.workspace.getLeavesOfType(VIEW_TYPE)) {
      if (leaf.view instanceof PoolView && leaf.view.tab === "activity") void leaf.view.show("activity");
    }
  }

  private fail(message: string): null {
    new Notice(`OWP: ${message}`);
    return null;
  }
}
