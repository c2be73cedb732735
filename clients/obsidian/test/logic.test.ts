// The plugin's pure parts: a note into a task, the SSE parser, the feed's words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { taskFromNote } from "../src/note-task.js";
import { SseParser, changes } from "../src/activity.js";
import { loadSettings } from "../src/settings.js";
import type { StateResponse } from "@owp/protocol";

test("a note's frontmatter and body become a task, keyed by the note's path", () => {
  const made = taskFromNote(
    { repo: "acme/w", skills: "Rust, docs,rust", size: "M", priority: "high", area: "parser", tier: 1 },
    "\nFix the parser.\n",
    "Projects/Fix parser.md",
    "",
  );
  assert.ok("task" in made);
  assert.deepEqual(made.task, {
    repo: "acme/w",
    title: "Fix parser",
    description: "Fix the parser.",
    required_skills: ["rust", "docs"],
    external_id: "obsidian:Projects/Fix parser.md",
    estimate_points: 3,
    priority: 50,
    area: "parser",
    tier: 1,
  });
  const fallback = taskFromNote({ title: "Named", skills: ["SQL"], estimate_points: 2 }, "", "a.md", "acme/default");
  assert.ok("task" in fallback);
  assert.equal(fallback.task.repo, "acme/default");
  assert.equal(fallback.task.title, "Named");
  assert.equal(fallback.task.estimate_points, 2);
});

test("a note without a repo, or with a size or priority no one knows, says why", () => {
  assert.match(String((taskFromNote({}, "", "a.md", "") as { error: string }).error), /no repo/);
  assert.match(String((taskFromNote({ repo: "a/b", size: "XXL" }, "", "a.md", "") as { error: string }).error), /size/);
  assert.match(String((taskFromNote({ repo: "a/b", priority: "soon" }, "", "a.md", "") as { error: string }).error), /priority/);
});

test("the SSE parser takes events split anywhere, CRLF, comments and multi-line data", () => {
  const p = new SseParser();
  const text = ": keep-alive\r\nevent: state\r\ndata: {\"a\":\r\ndata: 1}\r\n\r\nevent: state\ndata: 2\n\n";
  const events = [];
  for (const ch of text) events.push(...p.push(ch));
  assert.deepEqual(events, [
    { event: "state", data: '{"a":\n1}' },
    { event: "state", data: "2" },
  ]);
});

test("the feed names what changed between two states", () => {
  const base = {
    workers_online: 1,
    tasks_ready: 3,
    tasks_in_progress: 0,
    repositories: [{ repo: "acme/w", max_open_prs: 3, current_open_prs: 1 }],
    scheduler: { leader: "a" },
  } as unknown as StateResponse;
  const next = {
    ...base,
    tasks_ready: 2,
    tasks_in_progress: 1,
    repositories: [{ repo: "acme/w", max_open_prs: 3, current_open_prs: 2 }],
  } as unknown as StateResponse;
  assert.deepEqual(changes(base, next), ["tasks ready 3 -> 2", "tasks in progress 0 -> 1", "acme/w open PRs 1 -> 2 of 3"]);
  assert.deepEqual(changes(next, next), []);
  assert.match(changes(null, base)[0] ?? "", /connected: 3 ready/);
});

test("stored settings of the wrong shape fall back to the defaults", () => {
  const s = loadSettings({ url: "https://pool.example", adminToken: 42, extra: "x" });
  assert.equal(s.url, "https://pool.example");
  assert.equal(s.adminToken, "");
  assert.equal(loadSettings(null).url, "http://127.0.0.1:8787");
});
