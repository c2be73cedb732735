// The live activity feed: the pool's state stream (Server-Sent Events of the state object,
// GET /v1/admin/state/stream) read as it arrives, and each snapshot turned into the changes
// since the one before ("tasks in progress 3 -> 4", "acme/widgets open PRs 1 -> 2").
import type { StateResponse } from "@owp/protocol";

export interface SseEvent {
  event: string;
  data: string;
}

/** An incremental Server-Sent Events parser (the WHATWG rules this stream uses: `event:`,
 * multi-line `data:`, comments, CRLF or LF). Feed it chunks; it answers whole events. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];

  push(chunk: string): SseEvent[] {
    this.buffer += chunk;
    const out: SseEvent[] = [];
    let newline: number;
    while ((newline = this.buffer.search(/\r\n|\r|\n/)) >= 0) {
      // a CR that ends the chunk may be the first half of a CRLF: wait for the next one
      if (newline === this.buffer.length - 1 && this.buffer[newline] === "\r") break;
      const line = this.buffer.slice(0, newline);
      const width = this.buffer.startsWith("\r\n", newline) ? 2 : 1;
      this.buffer = this.buffer.slice(newline + width);
      if (line === "") {
        if (this.data.length > 0) out.push({ event: this.event || "message", data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") this.event = value;
      else if (field === "data") this.data.push(value);
    }
    return out;
  }
}

const COUNTS: [keyof StateResponse, string][] = [
  ["workers_online", "workers online"],
  ["tasks_ready", "tasks ready"],
  ["tasks_offered", "tasks offered"],
  ["tasks_leased", "tasks leased"],
  ["tasks_in_progress", "tasks in progress"],
  ["tasks_blocked", "tasks blocked"],
  ["tasks_pr_opened", "PRs open"],
  ["tasks_merged", "tasks merged"],
  ["tasks_completed", "tasks completed"],
  ["tasks_failed", "tasks failed"],
  ["tasks_cancelled", "tasks cancelled"],
];

/** What changed between two snapshots of the pool's state, in words. */
export function changes(before: StateResponse | null, after: StateResponse): string[] {
  if (!before) return [`connected: ${after.tasks_ready} ready, ${after.workers_online} workers online`];
  const out: string[] = [];
  for (const [key, label] of COUNTS) {
    const a = before[key];
    const b = after[key];
    if (typeof a === "number" && typeof b === "number" && a !== b) out.push(`${label} ${a} -> ${b}`);
  }
  for (const repo of after.repositories) {
    const old = before.repositories.find((r) => r.repo === repo.repo);
    if (!old) out.push(`${repo.repo} joined the pool`);
    else if (old.current_open_prs !== repo.current_open_prs)
      out.push(`${repo.repo} open PRs ${old.current_open_prs} -> ${repo.current_open_prs} of ${repo.max_open_prs}`);
  }
  if ((before.scheduler.leader ?? null) !== (after.scheduler.leader ?? null))
    out.push(`scheduler leader: ${after.scheduler.leader ?? "none"}`);
  return out;
}

/** Reads the state stream until `signal` aborts or the stream ends; each state to `onState`. */
export async function readStateStream(
  url: string,
  adminToken: string,
  onState: (state: StateResponse) => void,
  signal: AbortSignal,
  fetcher: typeof fetch = fetch,
): Promise<void> {
  const response = await fetcher(`${url.replace(/\/+$/, "")}/v1/admin/state/stream`, {
    headers: { "x-admin-token": adminToken, accept: "text/event-stream" },
    signal,
  });
  if (!response.ok || !response.body) throw new Error(`state stream: HTTP ${response.status}`);
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = response.body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const event of parser.push(decoder.decode(value, { stream: true }))) {
        if (event.event === "state" || event.event === "message") onState(JSON.parse(event.data) as StateResponse);
      }
    }
  } finally {
    reader.releaseLock();
  }
}
