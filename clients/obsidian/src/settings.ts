// The plugin's settings, kept by Obsidian's data API (the plugin's data.json in the vault's
// config folder). Tokens are secrets: never logged, never shown in a notice, shown masked.
import { type App, PluginSettingTab, Setting, type Plugin } from "obsidian";

export interface PoolSettings {
  url: string;
  /** a maintainer's admin token (X-Admin-Token) */
  adminToken: string;
  /** this vault's worker, once registered */
  workerToken: string;
  workerId: string;
  workerName: string;
  workerSkills: string;
  /** the repo of tasks made from notes that name none */
  defaultRepo: string;
}

export const DEFAULT_SETTINGS: PoolSettings = {
  url: "http://127.0.0.1:8787",
  adminToken: "",
  workerToken: "",
  workerId: "",
  workerName: "obsidian",
  workerSkills: "",
  defaultRepo: "",
};

/** Stored data merged over the defaults; anything of the wrong type falls back. */
export function loadSettings(stored: unknown): PoolSettings {
  const out: PoolSettings = { ...DEFAULT_SETTINGS };
  if (typeof stored === "object" && stored !== null) {
    for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof PoolSettings)[]) {
      const value = (stored as Record<string, unknown>)[key];
      if (typeof value === "string") out[key] = value;
    }
  }
  return out;
}

export interface SettingsHost extends Plugin {
  settings: PoolSettings;
  saveSettings(): Promise<void>;
}

export class PoolSettingTab extends PluginSettingTab {
  constructor(
    app: App,
    private readonly host: SettingsHost,
  ) {
    super(app, host);
  }

  display(): void {
    const { containerEl } = this;
    containerEl.empty();
    containerEl.createEl("h2", { text: "OWP Pool" });
    this.text("Pool URL", "The pool's base URL, e.g. https://pool.example.org", "url", false);
    this.text("Admin token", "A maintainer's token (X-Admin-Token): views, requeue and cancel, tasks from notes", "adminToken", true);
    this.text("Default repo", "owner/name for tasks from notes whose frontmatter names none", "defaultRepo", false);
    this.text("Worker name", "The name this vault registers as a worker with", "workerName", false);
    this.text("Worker skills", "Comma-separated, e.g. rust,docs", "workerSkills", false);
    new Setting(containerEl)
      .setName("Worker")
      .setDesc(this.host.settings.workerId ? `Registered as ${this.host.settings.workerId}` : "Not registered (command: Register as a worker)");
  }

  private text(name: string, desc: string, key: keyof PoolSettings, secret: boolean): void {
    new Setting(this.containerEl)
      .setName(name)
      .setDesc(desc)
      .addText((text) => {
        if (secret) text.inputEl.type = "password";
        text.setValue(this.host.settings[key]).onChange(async (value) => {
          this.host.settings[key] = value.trim();
          await this.host.saveSettings();
        });
      });
  }
}
