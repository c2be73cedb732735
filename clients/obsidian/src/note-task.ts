// A task from a note: its frontmatter gives the fields, its body the description. The key
// (`external_id`) is the note's path, so creating the task from the same note again answers
// the task made the first time instead of a second one.
import type { TaskRequest } from "@owp/protocol";

export type NoteTask = { task: TaskRequest } | { error: string };

const SIZES: Record<string, number> = { xs: 1, s: 2, m: 3, l: 5, xl: 8 };
const PRIORITIES: Record<string, number> = { low: 0, medium: 10, normal: 10, high: 50, urgent: 100, critical: 100 };

/** `frontmatter` as Obsidian's metadata cache parsed it; `body` the note without it. */
export function taskFromNote(
  frontmatter: Record<string, unknown> | undefined,
  body: string,
  path: string,
  defaultRepo: string,
): NoteTask {
  const fm = frontmatter ?? {};
  const repo = text(fm.repo) ?? (defaultRepo.trim() || undefined);
  if (!repo) return { error: "the note names no repo (frontmatter `repo:`) and the settings give no default repo" };
  const basename = path.split("/").pop()?.replace(/\.md$/, "") ?? path;
  const title = text(fm.title) ?? basename;
  const skills = list(fm.skills ?? fm.required_skills);
  const task: TaskRequest = {
    repo,
    title: title.slice(0, 300),
    description: body.trim().slice(0, 20_000),
    required_skills: skills,
    external_id: `obsidian:${path}`.slice(0, 200),
  };
  const points = number(fm.estimate_points ?? fm.points) ?? sized(fm.size);
  if (points === "bad") return { error: `size: ${String(fm.size)} is not XS, S, M, L, XL or a number` };
  if (points !== undefined) task.estimate_points = points;
  const priority = prioritised(fm.priority);
  if (priority === "bad") return { error: `priority: ${String(fm.priority)} is not a number or low, medium, high, critical` };
  if (priority !== undefined) task.priority = priority;
  const area = text(fm.area);
  if (area) task.area = area;
  const tier = number(fm.tier);
  if (tier !== undefined) task.tier = tier;
  return { task };
}

function text(v: unknown): string | undefined {
  if (typeof v === "string" && v.trim()) return v.trim();
  if (typeof v === "number") return String(v);
  return undefined;
}

function list(v: unknown): string[] {
  const items = Array.isArray(v) ? v : typeof v === "string" ? v.split(",") : [];
  return items.map((s) => String(s).trim().toLowerCase()).filter((s, i, all) => s && all.indexOf(s) === i);
}

function number(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isInteger(v)) return v;
  if (typeof v === "string" && /^-?\d+$/.test(v.trim())) return Number(v.trim());
  return undefined;
}

function sized(v: unknown): number | undefined | "bad" {
  if (v === undefined || v === null) return undefined;
  const n = number(v);
  if (n !== undefined) return n;
  return SIZES[String(v).trim().toLowerCase()] ?? "bad";
}

function prioritised(v: unknown): number | undefined | "bad" {
  if (v === undefined || v === null) return undefined;
  const n = number(v);
  if (n !== undefined) return n;
  return PRIORITIES[String(v).trim().toLowerCase()] ?? "bad";
}
