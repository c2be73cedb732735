// OWP Pool dashboard: a small page over the admin API. No framework, no build step.
// Everything shown is built with DOM nodes and textContent (task titles come from
// strangers' issues: nothing is ever parsed as HTML). Signed in by a session cookie; every
// action sends the session's CSRF value. Live: the pool's state stream (SSE), on which the
// open view refreshes itself.

const STATUSES = ["ready", "offered", "leased", "in_progress", "blocked", "pr_opened",
  "merged", "completed", "failed", "cancelled"];
const TIERS = ["untrusted", "basic", "trusted", "core"];

let csrf = null;
let stream = null;
let lastState = null;
let refreshTimer = null;
// the latest route() call, and its number when it is a live refresh (0 otherwise)
let routeSeq = 0;
let liveRoute = 0;
// What the last action said, on which view, and when: kept across re-renders for a while.
let lastNotice = null;
const NOTICE_KEEP_MS = 10000;
const main = () => document.getElementById("main");
// Worker id -> how a person knows it ("alice (@alice)"): ids are for machines.
const workerNames = new Map();
const tierName = (level) => TIERS[level] ?? String(level);

// ---------- DOM helpers ----------
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const fmtTime = (t) => (t ? new Date(t).toLocaleString() : "–");
const ago = (t) => {
  if (!t) return "–";
  const s = Math.round((Date.now() - new Date(t).getTime()) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
};
const status = (s) => h("span", { class: `status ${s}` }, s);
function table(headers, rows, caption) {
  return h("div", { class: "scroll" },
    h("table", {},
      caption ? h("caption", { class: "skip" }, caption) : null,
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length }, "None")))));
}
function show(...nodes) {
  const m = main();
  // a live refresh whose data arrived after someone started filling in a form keeps it
  if (liveRoute && liveRoute === routeSeq && formBusy()) return;
  // views pass `cond ? node : null`; replaceChildren would print a null as the word "null"
  m.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
  // a live refresh right after an action must not wipe the action's answer
  if (lastNotice && lastNotice.hash === location.hash && Date.now() - lastNotice.at < NOTICE_KEEP_MS) {
    paintNotice(lastNotice.text, lastNotice.isError);
  }
}
function notice(text, isError) {
  lastNotice = { text, isError, hash: location.hash, at: Date.now() };
  paintNotice(text, isError);
}
function paintNotice(text, isError) {
  const el = document.getElementById("notice");
  if (el) {
    el.className = isError ? "error" : "notice";
    el.textContent = text;
  }
}

// The workers' names, read once per view (up to 1,000 workers; beyond, ids show).
async function loadWorkerNames() {
  let cursor = null;
  for (let page = 0; page < 5; page++) {
    const q = new URLSearchParams({ limit: "200" });
    if (cursor) q.set("cursor", cursor);
    const list = await api("GET", `/v1/workers?${q}`);
    for (const w of list.workers) workerNames.set(w.worker_id, w.github_handle ? `${w.name} (@${w.github_handle})` : w.name);
    cursor = list.next_cursor;
    if (!cursor) break;
  }
}
// A worker as a person reads it: its name, with the id on hover.
function who(id) {
  if (!id) return "–";
  const name = workerNames.get(id);
  return name ? h("span", { title: id }, name) : h("span", { class: "mono" }, id);
}
// An audit actor: `worker:<id>` by name, anything else as it is.
function actor(a) {
  if (a && a.startsWith("worker:")) return who(a.slice(7));
  return a ?? "–";
}

// ---------- API ----------
class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? `${body.message}${body.details ? ": " + body.details : ""}` : `HTTP ${status}`);
    this.status = status;
  }
}
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-OWP-CSRF"] = csrf;
  const resp = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  const data = text ? JSON.parse(text) : null;
  if (resp.status === 401 && !path.startsWith("/v1/dashboard/session")) {
    signedOut();
    throw new ApiError(401, data);
  }
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

// ---------- session ----------
async function start() {
  document.getElementById("signout").addEventListener("click", signOut);
  window.addEventListener("hashchange", () => route());
  try {
    const s = await api("GET", "/v1/dashboard/session");
    if (s.signed_in) signedIn(s); else signedOut();
  } catch {
    signedOut();
  }
}
function signedIn(s) {
  csrf = s.csrf;
  document.getElementById("who").textContent = s.actor;
  document.getElementById("nav").hidden = false;
  document.getElementById("session").hidden = false;
  connect();
  route();
}
function signedOut() {
  csrf = null;
  if (stream) { stream.close(); stream = null; }
  document.getElementById("nav").hidden = true;
  document.getElementById("session").hidden = true;
  const error = h("p", { id: "signin-error", class: "error", role: "alert" });
  const input = h("input", { id: "token", type: "password", name: "token", required: true, autocomplete: "current-password" });
  const form = h("form", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      try {
        const s = await api("POST", "/v1/dashboard/session", { admin_token: input.value });
        input.value = "";
        signedIn(s);
      } catch (err) {
        error.textContent = err.status === 401 ? "That admin token was refused." : `Sign-in failed: ${err.message}`;
      }
    },
  }, h("label", { for: "token" }, "Admin token", input), h("button", { class: "primary", type: "submit" }, "Sign in"), error);
  show(h("section", { class: "signin", "aria-labelledby": "signin-title" },
    h("h2", { id: "signin-title" }, "Sign in"),
    h("p", {}, "The token is exchanged once for a session; it is not kept in the browser."), form));
  input.focus();
}
async function signOut() {
  await fetch("/v1/dashboard/session", { method: "DELETE", credentials: "same-origin" });
  signedOut();
}

// ---------- live updates ----------
function connect() {
  if (stream) stream.close();
  const live = document.getElementById("live");
  stream = new EventSource("/v1/admin/state/stream");
  stream.addEventListener("open", () => { live.textContent = "live"; live.classList.add("on"); });
  stream.addEventListener("state", (e) => {
    lastState = JSON.parse(e.data);
    scheduleRefresh();
  });
  stream.addEventListener("error", () => {
    live.textContent = "reconnecting…";
    live.classList.remove("on");
    // the browser retries a dropped stream itself; one refused (503 at the stream cap,
    // 401 after sign-out) is closed: try again shortly while signed in
    if (stream && stream.readyState === EventSource.CLOSED && csrf) {
      setTimeout(() => csrf && connect(), 3000);
    }
  });
}
// A form someone is filling in: focus inside it, or a field changed from its default.
function formBusy() {
  const m = main();
  return Boolean(m.querySelector("form:focus-within"))
    || [...m.querySelectorAll("form input:not([type=checkbox]), form textarea")].some((i) => i.value !== i.defaultValue);
}
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => route(true), 250);
}

// ---------- routing ----------
function route(live = false) {
  if (!csrf) return;
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  for (const a of document.querySelectorAll("nav a")) {
    const target = a.getAttribute("href").slice(1);
    const on = target === "/" ? path === "/" : path.startsWith(target);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const parts = path.split("/").filter(Boolean);
  const view = parts[0] === "tasks" && parts[1] ? () => taskView(parts[1])
    : parts[0] === "tasks" ? () => tasksView(params)
    : parts[0] === "workers" ? () => workersView(params)
    : parts[0] === "repos" ? () => reposView()
    : parts[0] === "audit" ? () => auditView(params)
    : parts[0] === "notifications" ? () => notificationsView()
    : () => overview();
  // a live refresh keeps a form being filled in (checked again when its data arrives: show)
  if (live && formBusy()) return Promise.resolve();
  routeSeq += 1;
  liveRoute = live ? routeSeq : 0;
  return loadWorkerNames().then(view)
    .catch((err) => { if (err.status !== 401) show(h("p", { class: "error", role: "alert" }, err.message)); });
}

// ---------- overview ----------
async function overview() {
  const [state, events, tput] = await Promise.all([
    lastState ? Promise.resolve(lastState) : api("GET", "/v1/admin/state"),
    api("GET", "/v1/audit/events?limit=15"),
    api("GET", "/v1/admin/throughput?minutes=60"),
  ]);
  lastState = state;
  const card = (n, l, id) => h("div", { class: "card" }, h("div", { class: "n", id }, n), h("div", { class: "l" }, l));
  const s = state;
  const counts = STATUSES.map((st) => card(s[`tasks_${st}`] ?? 0, st.replace("_", " "), `count-${st}`));
  show(
    h("h2", {}, "Overview"),
    h("div", { class: "cards", "aria-label": "Pool at a glance", role: "group" },
      card(`${s.workers_online} / ${s.workers_total}`, "workers online", "count-workers"),
      ...counts,
      card(s.scheduler.leader ?? "none", "scheduler leader", "leader"),
      card(ago(s.scheduler.last_sweep_at), "last sweep", "last-sweep")),
    h("div", { class: "grid2" },
      h("section", { "aria-labelledby": "repos-title" },
        h("h3", { id: "repos-title" }, "Repositories"),
        table(["repo", "review budget", "stale PRs", "area locks"], s.repositories.map((r) =>
          h("tr", {}, h("td", {}, h("a", { href: `#/tasks?repo=${encodeURIComponent(r.repo)}` }, r.repo)),
            h("td", {}, budget(r.current_open_prs, r.max_open_prs)),
            h("td", { class: "num" }, r.stale_prs), h("td", {}, r.area_locks_enabled ? "on" : "off"))))),
      h("section", { "aria-labelledby": "tput-title" },
        h("h3", { id: "tput-title" }, "Throughput, last hour"), chart(tput.minutes))),
    h("section", { "aria-labelledby": "feed-title" },
      h("h3", { id: "feed-title" }, "Recent events"), feed(events.events)));
}
function budget(open, max) {
  const pct = max > 0 ? Math.min(100, Math.round((open / max) * 100)) : 100;
  const fill = h("div", { class: `fill${open >= max ? " full" : ""}` });
  fill.style.width = `${pct}%`;
  return h("div", { class: "budget", role: "img", "aria-label": `${open} of ${max} review slots in use` },
    h("div", { class: "track" }, fill), h("span", { class: "mono" }, `${open}/${max}`));
}
function chart(minutes) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const W = 600, H = 120, n = minutes.length || 1;
  const max = Math.max(1, ...minutes.map((m) => Math.max(m.claimed, m.completed)));
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const total = (k) => minutes.reduce((a, m) => a + m[k], 0);
  svg.setAttribute("aria-label", `Last hour: ${total("claimed")} tasks claimed, ${total("completed")} completed`);
  minutes.forEach((m, i) => {
    const w = W / n;
    for (const [k, off, cls] of [["claimed", 0, "claimed"], ["completed", w / 2, "completed"]]) {
      const r = document.createElementNS(ns, "rect");
      const bh = (m[k] / max) * (H - 4);
      r.setAttribute("x", String(i * w + off));
      r.setAttribute("y", String(H - bh));
      r.setAttribute("width", String(Math.max(1, w / 2 - 1)));
      r.setAttribute("height", String(bh));
      r.setAttribute("class", cls);
      const t = document.createElementNS(ns, "title");
      t.textContent = `${new Date(m.at).toLocaleTimeString()}: ${m[k]} ${k}`;
      r.append(t);
      svg.append(r);
    }
  });
  return h("div", { class: "chart" }, svg,
    h("div", { class: "legend" }, `per minute: grey claimed (${total("claimed")}), blue completed (${total("completed")})`));
}
function feed(events) {
  return h("ul", { class: "feed", "aria-live": "off" }, events.map((e) =>
    h("li", {}, h("time", { datetime: e.timestamp }, fmtTime(e.timestamp)), h("strong", {}, e.event_type), " ",
      e.target ? h("a", { href: e.target.startsWith("t_") ? `#/tasks/${e.target}` : "#/workers" },
        e.target.startsWith("w_") ? who(e.target) : e.target) : "",
      " by ", actor(e.actor))));
}

// ---------- tasks ----------
const cursors = [];
async function tasksView(params) {
  const q = new URLSearchParams({ limit: "50" });
  for (const k of ["status", "repo", "worker_id", "cursor"]) if (params.get(k)) q.set(k, params.get(k));
  const [list, repos] = await Promise.all([api("GET", `/v1/tasks?${q}`), api("GET", "/v1/admin/repos")]);
  const statusSel = h("select", { id: "f-status", name: "status" }, h("option", { value: "" }, "any"),
    STATUSES.map((s) => h("option", { value: s, selected: params.get("status") === s }, s)));
  const repoSel = h("select", { id: "f-repo", name: "repo" }, h("option", { value: "" }, "any"),
    repos.repositories.map((r) => h("option", { value: r.repo, selected: params.get("repo") === r.repo }, r.repo)));
  const go = (extra = {}) => {
    const p = new URLSearchParams();
    if (statusSel.value) p.set("status", statusSel.value);
    if (repoSel.value) p.set("repo", repoSel.value);
    for (const [k, v] of Object.entries(extra)) p.set(k, v);
    location.hash = `#/tasks?${p}`;
  };
  const rows = list.tasks.map((t) => h("tr", {},
    h("td", {}, h("a", { href: `#/tasks/${t.task_id}`, class: "mono" }, t.task_id)),
    h("td", {}, t.title), h("td", {}, status(t.status)), h("td", {}, t.repo),
    h("td", { class: "num" }, t.priority), h("td", { class: "num" }, t.estimate_points),
    h("td", {}, t.area ?? "–"), h("td", {}, who(t.worker_id), t.awaiting_approval ? " · awaiting approval" : null)));
  const next = list.next_cursor;
  show(
    h("h2", {}, "Tasks"),
    h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); go(); } },
      h("label", { for: "f-status" }, "Status", statusSel), h("label", { for: "f-repo" }, "Repository", repoSel),
      h("button", { type: "submit" }, "Filter")),
    table(["task", "title", "status", "repo", "priority", "points", "area", "worker"], rows, "Tasks"),
    h("div", { class: "pager" },
      params.get("cursor") ? h("button", { type: "button", onclick: () => history.back() }, "Previous page") : null,
      next ? h("button", { type: "button", id: "next-page", onclick: () => go({ cursor: next }) }, "Next page") : null),
    newTaskForm(repos.repositories));
}
function newTaskForm(repos) {
  const f = {
    repo: h("select", { id: "t-repo", required: true }, repos.map((r) => h("option", { value: r.repo }, r.repo))),
    title: h("input", { id: "t-title", required: true, maxlength: "300" }),
    skills: h("input", { id: "t-skills", placeholder: "rust, sql" }),
    points: h("input", { id: "t-points", type: "number", min: "1", max: "100", value: "1" }),
    priority: h("input", { id: "t-priority", type: "number", value: "10" }),
    area: h("input", { id: "t-area", maxlength: "100" }),
  };
  const msg = h("p", { id: "notice", role: "status" });
  return h("section", { "aria-labelledby": "new-task" }, h("h3", { id: "new-task" }, "New task"),
    h("form", {
      class: "inline",
      onsubmit: async (e) => {
        e.preventDefault();
        if (!confirm(`Create the task "${f.title.value}" in ${f.repo.value}?`)) return;
        try {
          const r = await api("POST", "/v1/admin/tasks", {
            repo: f.repo.value, title: f.title.value,
            required_skills: f.skills.value.split(",").map((s) => s.trim()).filter(Boolean),
            estimate_points: Number(f.points.value), priority: Number(f.priority.value),
            area: f.area.value || null,
          });
          f.title.value = "";
          msg.className = "notice";
          msg.textContent = `Created ${r.task_id}.`;
        } catch (err) { msg.className = "error"; msg.textContent = err.message; }
      },
    },
    h("label", { for: "t-repo" }, "Repository", f.repo), h("label", { for: "t-title" }, "Title", f.title),
    h("label", { for: "t-skills" }, "Skills", f.skills), h("label", { for: "t-points" }, "Points", f.points),
    h("label", { for: "t-priority" }, "Priority", f.priority), h("label", { for: "t-area" }, "Area", f.area),
    h("button", { class: "primary", type: "submit" }, "Create task")), msg);
}
async function taskView(id) {
  const t = await api("GET", `/v1/tasks/${encodeURIComponent(id)}`);
  const act = (label, path, body, question, cls) => h("button", {
    type: "button", class: cls,
    onclick: async () => {
      if (!confirm(question)) return;
      try { await api("POST", path, body); await route(); notice(`${label}: done.`); } catch (err) { notice(err.message, true); }
    },
  }, label);
  const field = (k, v) => [h("dt", {}, k), h("dd", {}, v ?? "–")];
  show(
    h("p", {}, h("a", { href: "#/tasks" }, "← Tasks")),
    h("h2", {}, t.title),
    h("dl", { class: "fields" },
      field("task", h("span", { class: "mono" }, t.task_id)), field("status", status(t.status)), field("repo", t.repo),
      field("priority", t.priority), field("points", t.estimate_points), field("skills", t.required_skills.join(", ") || "–"),
      field("area", t.area), field("tier", tierName(t.tier)), field("min reputation", t.min_reputation),
      field("attempts", `${t.attempt} of ${t.max_attempts}`),
      field("worker", t.worker_id ? [who(t.worker_id), t.awaiting_approval ? " · awaiting your approval" : ""] : null),
      field("pull request", t.pr_url ? h("a", { href: t.pr_url, rel: "noopener noreferrer" }, t.pr_url) : null),
      field("not before", t.not_before ? fmtTime(t.not_before) : null),
      field("depends on", t.depends_on.length ? t.depends_on.map((d) => h("a", { href: `#/tasks/${d}`, class: "mono" }, d, " ")) : null),
      field("reserved for", t.reserved_for ? [who(t.reserved_for), ` until ${fmtTime(t.reserved_until)}`] : null),
      field("external id", t.external_id), field("created", fmtTime(t.created_at))),
    h("div", { class: "actions" },
      t.awaiting_approval ? act("Approve claim", `/v1/tasks/${t.task_id}/approve`, {}, `Let ${workerNames.get(t.worker_id) ?? t.worker_id} start on ${t.task_id}?`, "primary") : null,
      t.awaiting_approval ? act("Deny claim", `/v1/tasks/${t.task_id}/deny`, {}, `Deny ${workerNames.get(t.worker_id) ?? t.worker_id}'s claim? The task goes to someone else.`) : null,
      act("Requeue", `/v1/tasks/${t.task_id}/requeue`, {}, `Requeue ${t.task_id}? A live lease ends.`),
      act("Cancel", `/v1/tasks/${t.task_id}/cancel`, {}, `Cancel ${t.task_id} for good?`, "danger")),
    h("p", { id: "notice", role: "status" }),
    t.description ? h("pre", { class: "desc" }, t.description) : null,
    h("h3", {}, shownOf("Leases", t.leases.length, t.leases_total)),
    table(["lease", "worker", "attempt", "granted", "ended", "end"], t.leases.map((l) => h("tr", {},
      h("td", { class: "mono" }, l.lease_id), h("td", {}, who(l.worker_id)), h("td", { class: "num" }, l.attempt),
      h("td", {}, fmtTime(l.granted_at)), h("td", {}, fmtTime(l.ended_at)), h("td", {}, l.end_reason ?? "live")))),
    h("h3", {}, shownOf("Artifacts", t.artifacts.length, t.artifacts_total)),
    table(["pull request", "commit", "by", "at"], t.artifacts.map((a) => h("tr", {},
      h("td", {}, a.pr_url ?? "–"), h("td", { class: "mono" }, a.commit_sha ?? "–"), h("td", {}, who(a.worker_id)),
      h("td", {}, fmtTime(a.created_at))))),
    h("h3", {}, "History"),
    feed([...t.events].reverse()));
}

// The server answers a task's newest leases and artifacts; say so when there are more.
function shownOf(title, shown, total) {
  return total > shown ? `${title} (the newest ${shown} of ${total})` : title;
}

// ---------- workers ----------
async function workersView(params) {
  const q = new URLSearchParams({ limit: "100" });
  if (params.get("cursor")) q.set("cursor", params.get("cursor"));
  const list = await api("GET", `/v1/workers?${q}`);
  const act = (w, label, action, question, cls) => h("button", {
    type: "button", class: cls,
    onclick: async () => {
      if (!confirm(question)) return;
      try { await api("POST", `/v1/workers/${w.worker_id}/${action}`, {}); await route(); notice(`${w.name}: ${label.toLowerCase()} done.`); }
      catch (err) { notice(err.message, true); }
    },
  }, label);
  const trust = (w) => {
    const sel = h("select", { "aria-label": `Trust tier of ${w.name}` }, TIERS.map((t) => h("option", { value: t, selected: t === w.trust_tier }, t)));
    return h("form", {
      class: "inline",
      onsubmit: async (e) => {
        e.preventDefault();
        const reason = prompt(`Why set ${w.name} to ${sel.value}?`);
        if (!reason) return;
        try { await api("POST", `/v1/workers/${w.worker_id}/trust-tier`, { tier: sel.value, reason }); await route(); notice(`${w.name} is ${sel.value}.`); }
        catch (err) { notice(err.message, true); }
      },
    }, sel, h("button", { type: "submit" }, "Set tier"));
  };
  const rows = list.workers.map((w) => h("tr", {},
    h("td", {}, w.name, w.github_handle ? ` (@${w.github_handle})` : null, h("div", { class: "mono" }, w.worker_id)),
    h("td", {}, w.skills.join(", ") || "–"),
    h("td", { class: "num" }, `${w.used_points}/${w.capacity_points} pts, ${w.live_leases}/${w.max_concurrent_tasks}`),
    h("td", {}, w.revoked ? "revoked" : w.paused ? h("strong", { class: "paused" }, "paused by an admin")
      : [w.online ? "online" : "offline", " · ", w.status]),
    h("td", {}, ago(w.last_heartbeat)),
    h("td", { class: "num" }, w.reputation_score),
    h("td", {}, w.revoked ? "revoked" : trust(w)),
    h("td", {}, w.revoked ? "" : h("div", { class: "actions" },
      w.paused ? act(w, "Resume", "resume", `Resume ${w.name}?`) : act(w, "Pause", "pause", `Pause ${w.name}? It keeps its leases.`),
      act(w, "Revoke", "revoke", `Revoke ${w.name} for good? Its token stops working and its leases are requeued.`, "danger")))));
  show(h("h2", {}, "Workers"), h("p", { id: "notice", role: "status" }),
    table(["worker", "skills", "capacity in use", "status", "heartbeat", "reputation", "trust tier", "actions"], rows, "Workers"),
    list.next_cursor ? h("div", { class: "pager" }, h("a", { href: `#/workers?cursor=${list.next_cursor}` }, "Next page")) : null);
}

// ---------- repositories ----------
// A repository's access rules in a line: who may take its work.
function access(r) {
  const parts = [];
  if (r.allow_workers) parts.push(["only ", r.allow_workers.map((id) => [who(id), " "])]);
  if (r.deny_workers.length) parts.push(["not ", r.deny_workers.map((id) => [who(id), " "])]);
  if (r.min_trust_tier !== "untrusted") parts.push(`${r.min_trust_tier} and above`);
  if (r.claim_approval) parts.push("untrusted claims need approval");
  return parts.length ? parts.map((p, i) => [i ? " · " : "", p]) : "anyone";
}
async function reposView() {
  const repos = await api("GET", "/v1/admin/repos");
  const f = {
    repo: h("input", { id: "r-repo", required: true, placeholder: "owner/name", maxlength: "200" }),
    budget: h("input", { id: "r-budget", type: "number", min: "0", max: "10000", value: "3" }),
    locks: h("input", { id: "r-locks", type: "checkbox", checked: true }),
  };
  show(h("h2", {}, "Repositories"),
    table(["repo", "review budget", "fair share", "ready", "held areas", "stale PRs", "write-back", "who may work", "claims awaiting approval"],
      repos.repositories.map((r) => h("tr", {},
        h("td", {}, h("a", { href: `#/tasks?repo=${encodeURIComponent(r.repo)}` }, r.repo)),
        h("td", {}, budget(r.open_slots, r.max_open_prs)), h("td", { class: "num" }, r.fair_share),
        h("td", { class: "num" }, r.ready),
        h("td", {}, r.held_areas.join(", ") || "–"), h("td", { class: "num" }, r.stale_prs),
        h("td", {}, r.github_write_back ? "on" : "off"),
        h("td", {}, access(r)),
        h("td", { class: "num" }, r.claim_approval ? r.awaiting_approval : "–"))), "Repositories"),
    h("section", { "aria-labelledby": "new-repo" }, h("h3", { id: "new-repo" }, "New repository"),
      h("form", {
        class: "inline",
        onsubmit: async (e) => {
          e.preventDefault();
          if (!confirm(`Create or update ${f.repo.value} with a review budget of ${f.budget.value}?`)) return;
          try {
            await api("POST", "/v1/admin/repos", { repo: f.repo.value, max_open_prs: Number(f.budget.value), area_locks_enabled: f.locks.checked });
            const saved = f.repo.value;
            await route();
            notice(`${saved} saved.`);
          } catch (err) { notice(err.message, true); }
        },
      }, h("label", { for: "r-repo" }, "Repository", f.repo), h("label", { for: "r-budget" }, "Review budget", f.budget),
      h("label", { for: "r-locks" }, "Area locks", f.locks), h("button", { class: "primary", type: "submit" }, "Save repository")),
      h("p", { id: "notice", role: "status" })));
}

// ---------- notifications ----------
const EVENTS = ["task_failed", "pr_stale", "write_back_gave_up", "worker_revoked", "budget_full"];
// a new channel's signing secret stays on the page until the admin says it is copied
let revealed = null;
async function notificationsView() {
  const [list, failed] = await Promise.all([
    api("GET", "/v1/admin/notifications"),
    api("GET", "/v1/admin/notifications/deliveries?state=failed&limit=50"),
  ]);
  const act = (label, method, path, done, question, cls) => h("button", {
    type: "button", class: cls,
    onclick: async () => {
      if (question && !confirm(question)) return;
      try { await api(method, path); await route(); notice(done); } catch (err) { notice(err.message, true); }
    },
  }, label);
  const names = new Map(list.channels.map((c) => [c.id, c.name]));
  const f = {
    name: h("input", { id: "n-name", required: true, maxlength: "100" }),
    kind: h("select", { id: "n-kind" }, ...["webhook", "slack", "discord"].map((k) => h("option", { value: k }, k))),
    url: h("input", { id: "n-url", required: true, type: "url", placeholder: "https://…", maxlength: "2000" }),
    repo: h("input", { id: "n-repo", placeholder: "every repository", maxlength: "200" }),
    events: EVENTS.map((e) => h("input", { type: "checkbox", value: e, id: `n-ev-${e}`, checked: e === "task_failed" })),
  };
  show(h("h2", {}, "Notifications"), h("p", { id: "notice", role: "status" }),
    revealed ? h("div", { class: "notice", id: "secret", role: "status" },
      `The signing secret of ${revealed.name}, shown only now: `, h("code", {}, revealed.secret), " ",
      h("button", { type: "button", onclick: () => { revealed = null; route(); } }, "I have copied it")) : null,
    table(["channel", "kind", "url", "repo", "events", "pending", "given up", "last delivered", "actions"],
      list.channels.map((c) => h("tr", {},
        h("td", {}, c.name, h("div", { class: "mono" }, c.id)), h("td", {}, c.kind), h("td", { class: "mono" }, c.url),
        h("td", {}, c.repo ?? "all"), h("td", {}, c.events.join(", ")), h("td", { class: "num" }, c.pending),
        h("td", { class: "num" }, c.failed), h("td", {}, ago(c.last_delivered_at)),
        h("td", {}, h("div", { class: "actions" },
          act("Send test", "POST", `/v1/admin/notifications/${c.id}/test`, `Test for ${c.name} queued.`),
          act("Remove", "DELETE", `/v1/admin/notifications/${c.id}`, `${c.name} removed.`, `Remove ${c.name} and what it has still to deliver?`, "danger"))))),
      "Notification channels"),
    h("h3", {}, "Given up"),
    table(["when", "channel", "event", "tries", "last answer", "what it said", ""],
      failed.deliveries.map((d) => h("tr", {},
        h("td", {}, fmtTime(d.gave_up_at)), h("td", {}, names.get(d.channel_id) ?? d.channel_id), h("td", {}, d.event),
        h("td", { class: "num" }, d.attempts), h("td", {}, d.last_error ?? "–"), h("td", {}, d.summary),
        h("td", {}, act("Retry", "POST", `/v1/admin/notifications/deliveries/${d.id}/retry`, `Delivery ${d.id} queued again.`)))),
      "Notifications given up"),
    h("section", { "aria-labelledby": "new-channel" }, h("h3", { id: "new-channel" }, "New channel"),
      h("form", {
        class: "inline",
        onsubmit: async (e) => {
          e.preventDefault();
          const events = f.events.filter((c) => c.checked).map((c) => c.value);
          const body = { name: f.name.value, kind: f.kind.value, url: f.url.value, events };
          if (f.repo.value.trim()) body.repo = f.repo.value.trim();
          try {
            const made = await api("POST", "/v1/admin/notifications", body);
            revealed = { name: made.channel.name, secret: made.secret };
            await route();
            notice(`${made.channel.name} made.`);
          } catch (err) { notice(err.message, true); }
        },
      }, h("label", { for: "n-name" }, "Name", f.name), h("label", { for: "n-kind" }, "Kind", f.kind),
      h("label", { for: "n-url" }, "URL", f.url), h("label", { for: "n-repo" }, "Repository", f.repo),
      h("fieldset", { class: "events" }, h("legend", {}, "Events"), ...f.events.map((c) => h("label", { for: c.id }, c, c.value))),
      h("button", { class: "primary", type: "submit" }, "Make channel"))));
}

// ---------- audit ----------
const AUDIT_FILTERS = ["event_type", "actor", "target", "repo", "since"];
async function auditView(params) {
  const q = new URLSearchParams({ limit: "100" });
  for (const k of [...AUDIT_FILTERS, "cursor"]) if (params.get(k)) q.set(k, params.get(k));
  const list = await api("GET", `/v1/audit/events?${q}`);
  const inputs = Object.fromEntries(AUDIT_FILTERS.map((k) => [k, h("input", {
    id: `a-${k}`, name: k, value: params.get(k) ?? "",
    placeholder: { event_type: "task_requeued", actor: "admin:alice", target: "t_… or w_…", repo: "owner/name", since: "2026-12-01T00:00:00Z" }[k],
  })]));
  const filters = () => {
    const p = new URLSearchParams();
    for (const k of AUDIT_FILTERS) if (inputs[k].value.trim()) p.set(k, inputs[k].value.trim());
    return p;
  };
  // the export carries the same filters; the session cookie authenticates the download
  const exported = new URLSearchParams();
  for (const k of AUDIT_FILTERS) if (params.get(k)) exported.set(k, params.get(k));
  const link = (format) => {
    const p = new URLSearchParams(exported);
    p.set("format", format);
    return h("a", { href: `/v1/audit/export?${p}`, download: true, id: `export-${format}` }, `Export ${format.toUpperCase()}`);
  };
  const rows = list.events.map((e) => h("tr", {},
    h("td", {}, h("time", { datetime: e.timestamp }, fmtTime(e.timestamp))), h("td", {}, e.event_type),
    h("td", {}, actor(e.actor)),
    h("td", {}, e.target ? (e.target.startsWith("t_") ? h("a", { href: `#/tasks/${e.target}`, class: "mono" }, e.target)
      : e.target.startsWith("w_") ? who(e.target) : e.target) : "–"),
    h("td", {}, e.details.repo ?? "–"),
    h("td", { class: "mono small" }, [e.details.from_status, e.details.to_status].filter(Boolean).join(" → "), e.details.reason ? ` (${e.details.reason})` : null)));
  show(h("h2", {}, "Audit log"),
    h("form", { class: "filters", role: "search", onsubmit: (e) => { e.preventDefault(); location.hash = `#/audit?${filters()}`; } },
      AUDIT_FILTERS.map((k) => h("label", { for: `a-${k}` }, k.replace("_", " "), inputs[k])),
      h("button", { type: "submit" }, "Filter")),
    h("p", { id: "audit-total" }, `${list.total_exact ? list.total : `more than ${list.total}`} events match · `, link("csv"), " · ", link("ndjson")),
    table(["when", "event", "by", "about", "repo", "change"], rows, "Audit events"),
    h("div", { class: "pager" },
      params.get("cursor") ? h("button", { type: "button", onclick: () => history.back() }, "Newer") : null,
      list.next_cursor ? h("button", { type: "button", id: "audit-next", onclick: () => {
        const p = filters(); p.set("cursor", list.next_cursor); location.hash = `#/audit?${p}`;
      } }, "Older") : null));
}

start();
