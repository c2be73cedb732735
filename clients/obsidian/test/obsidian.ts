// A minimal stand-in for the host application's API, for running the plugin's own code under
// node: only what the plugin calls, behaving as Obsidian documents it. requestUrl goes over
// the network for real (to the live pool); the vault is a map of notes in memory.

type Options = { text?: string; cls?: string };

/** An element with Obsidian's helpers (createEl, createDiv, empty…). */
export class El {
  children: El[] = [];
  text = "";
  cls = "";
  type = "text";
  private listeners = new Map<string, (() => unknown)[]>();
  constructor(readonly tag: string) {}
  createEl(tag: string, o: Options = {}): El {
    const el = new El(tag);
    el.text = o.text ?? "";
    el.cls = o.cls ?? "";
    this.children.push(el);
    return el;
  }
  createDiv(o: Options = {}): El {
    return this.createEl("div", o);
  }
  createSpan(o: Options = {}): El {
    return this.createEl("span", o);
  }
  empty(): void {
    this.children = [];
  }
  addEventListener(kind: string, fn: () => unknown): void {
    this.listeners.set(kind, [...(this.listeners.get(kind) ?? []), fn]);
  }
  async click(): Promise<void> {
    for (const fn of this.listeners.get("click") ?? []) await fn();
  }
  get textContent(): string {
    return [this.text, ...this.children.map((c) => c.textContent)].filter(Boolean).join("\n");
  }
  find(tag: string, text: string): El[] {
    const here = this.tag === tag && this.text.includes(text) ? [this] : [];
    return [...here, ...this.children.flatMap((c) => c.find(tag, text))];
  }
}

export const notices: string[] = [];
export class Notice {
  constructor(message: string) {
    notices.push(message);
  }
}

export class TFile {
  constructor(
    readonly path: string,
    public text: string,
    public frontmatter: Record<string, unknown> | undefined,
    public frontmatterEnd: number,
  ) {}
}

export class Component {
  register(_cb: () => unknown): void {}
}

export class WorkspaceLeaf {
  view: unknown = null;
  async setViewState(state: { type: string }): Promise<void> {
    const create = app.views.get(state.type);
    if (!create) throw new Error(`no view ${state.type}`);
    const view = create(this) as { onOpen(): Promise<void> };
    this.view = view;
    app.leaves.push(this);
    await view.onOpen();
  }
}

export class ItemView extends Component {
  contentEl = new El("div");
  constructor(readonly leaf: WorkspaceLeaf) {
    super();
  }
}

export class FakeApp {
  views = new Map<string, (leaf: WorkspaceLeaf) => unknown>();
  leaves: WorkspaceLeaf[] = [];
  active: TFile | null = null;
  workspace = {
    getLeavesOfType: (type: string) =>
      this.leaves.filter((l) => (l.view as { getViewType(): string } | null)?.getViewType() === type),
    getRightLeaf: (_split: boolean) => new WorkspaceLeaf(),
    revealLeaf: async (_leaf: WorkspaceLeaf) => undefined,
    getActiveFile: () => this.active,
  };
  metadataCache = {
    getFileCache: (file: TFile) => ({
      frontmatter: file.frontmatter,
      frontmatterPosition: file.frontmatter ? { end: { offset: file.frontmatterEnd } } : undefined,
    }),
  };
  vault = { read: async (file: TFile) => file.text };
  fileManager = {
    processFrontMatter: async (file: TFile, fn: (fm: Record<string, unknown>) => void) => {
      file.frontmatter ??= {};
      fn(file.frontmatter);
    },
  };
}
export const app = new FakeApp();
export type App = FakeApp;

export interface Command {
  id: string;
  name: string;
  callback: () => unknown;
}

export class Plugin extends Component {
  app = app;
  commands = new Map<string, Command>();
  settingTabs: PluginSettingTab[] = [];
  stored: unknown = null;
  async loadData(): Promise<unknown> {
    return this.stored;
  }
  async saveData(data: unknown): Promise<void> {
    this.stored = JSON.parse(JSON.stringify(data));
  }
  addCommand(command: Command): Command {
    this.commands.set(command.id, command);
    return command;
  }
  addSettingTab(tab: PluginSettingTab): void {
    this.settingTabs.push(tab);
  }
  registerView(type: string, create: (leaf: WorkspaceLeaf) => unknown): void {
    app.views.set(type, create);
  }
  addRibbonIcon(_icon: string, _title: string, _cb: () => unknown): El {
    return new El("div");
  }
}

export class PluginSettingTab {
  containerEl = new El("div");
  constructor(
    readonly app: FakeApp,
    readonly plugin: Plugin,
  ) {}
}

export class TextComponent {
  inputEl = new El("input");
  value = "";
  change: ((value: string) => unknown) | null = null;
  setValue(value: string): this {
    this.value = value;
    return this;
  }
  onChange(fn: (value: string) => unknown): this {
    this.change = fn;
    return this;
  }
  /** what typing into the field does */
  async type(value: string): Promise<void> {
    this.value = value;
    await this.change?.(value);
  }
}

export const settings: { name: string; text?: TextComponent }[] = [];
export class Setting {
  private entry: { name: string; text?: TextComponent } = { name: "" };
  constructor(readonly containerEl: El) {
    settings.push(this.entry);
  }
  setName(name: string): this {
    this.entry.name = name;
    return this;
  }
  setDesc(_desc: string): this {
    return this;
  }
  addText(fn: (text: TextComponent) => unknown): this {
    const text = new TextComponent();
    this.entry.text = text;
    fn(text);
    return this;
  }
}

export interface RequestUrlParam {
  url: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | ArrayBuffer;
  throw?: boolean;
}
export interface RequestUrlResponse {
  status: number;
  headers: Record<string, string>;
  arrayBuffer: ArrayBuffer;
  text: string;
}
export const requests: string[] = [];
export async function requestUrl(p: RequestUrlParam): Promise<RequestUrlResponse> {
  requests.push(`${p.method ?? "GET"} ${new URL(p.url).pathname}`);
  const response = await fetch(p.url, { method: p.method ?? "GET", headers: p.headers, body: p.body });
  const arrayBuffer = await response.arrayBuffer();
  if (p.throw !== false && response.status >= 400) throw new Error(`Request failed, status ${response.status}`);
  const headers: Record<string, string> = {};
  response.headers.forEach((v, k) => (headers[k] = v));
  return { status: response.status, headers, arrayBuffer, text: new TextDecoder().decode(arrayBuffer) };
}
