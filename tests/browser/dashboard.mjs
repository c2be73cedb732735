// The dashboard in a real headless Chromium against two real replicas (A serves the page,
// changes are made through B). Run by scripts/browser-test.sh, which starts them.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(`${process.env.PW_TOOLS}/`);
const { chromium } = require("playwright-core");

const A = process.env.OWP_A;
const B = process.env.OWP_B;
const TOKEN = process.env.OWP_ADMIN_TOKEN;
const SHOTS = process.env.OWP_SCREENSHOTS || "target/screenshots";

async function api(base, method, path, body) {
  const resp = await fetch(`${base}${path}`, {
    method,
    headers: { "X-Admin-Token": TOKEN, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${path}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const step = (name) => console.log(`- ${name}`);
const started = Date.now();

// --- a pool with something in it, made through replica B ---
await api(B, "POST", "/v1/admin/repos", { repo: "acme/widgets", max_open_prs: 3, area_locks_enabled: true });
await api(B, "POST", "/v1/admin/repos", { repo: "acme/docs", max_open_prs: 2, area_locks_enabled: false });
const reg = await (await fetch(`${B}/v1/workers/register`, {
  method: "POST", headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ name: "alice", github_handle: "alice", skills: ["rust"], capacity_points: 10, max_concurrent_tasks: 2 }),
})).json();
await api(B, "POST", "/v1/admin/tasks", [
  { repo: "acme/widgets", title: "Fix the parser", required_skills: ["rust"], area: "parser", priority: 20 },
  { repo: "acme/widgets", title: "Speed up the build", estimate_points: 2 },
  { repo: "acme/docs", title: "Document the CLI" },
]);
const work = await (await fetch(`${B}/v1/work`, { headers: { Authorization: `Bearer ${reg.token}` } })).json();
assert.equal(work.leases.length, 2, "the worker holds two leases");
const leased = work.leases[0].task_id;

// --- served pages: content types and cache headers ---
step("pages and assets carry their content types, cache headers and CSP");
const page0 = await fetch(`${A}/`);
assert.match(page0.headers.get("content-type"), /^text\/html/);
assert.equal(page0.headers.get("cache-control"), "no-cache");
assert.match(page0.headers.get("content-security-policy"), /script-src 'self'/);
const html = await page0.text();
const js = html.match(/src="([^"]+app\.js[^"]*)"/)[1];
const css = html.match(/href="([^"]+app\.css[^"]*)"/)[1];
for (const [path, type] of [[js, /^text\/javascript/], [css, /^text\/css/]]) {
  const r = await fetch(`${A}${path}`);
  assert.equal(r.status, 200, path);
  assert.match(r.headers.get("content-type"), type);
  assert.match(r.headers.get("cache-control"), /max-age=31536000, immutable/);
}
assert.equal((await fetch(`${A}/assets/nope.js`)).status, 404);

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1366, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.on("dialog", (d) => (d.type() === "prompt" ? d.accept("trusted by the browser test") : d.accept()));

// --- sign-in: a wrong token is refused, the right one gives a session cookie ---
step("a wrong token is refused");
await page.goto(`${A}/`);
await page.fill("#token", "not-the-token");
await page.click("button[type=submit]");
await page.waitForSelector("#signin-error:has-text('refused')");
assert.equal((await context.cookies()).filter((c) => c.name === "owp_session").length, 0);
// the browser logs the refused request itself; that one is expected
consoleErrors.length = 0;
await page.screenshot({ path: `${SHOTS}/sign-in.png` });

step("signing in sets an HttpOnly, SameSite=Strict cookie");
await page.fill("#token", TOKEN);
await page.click("button[type=submit]");
await page.waitForSelector("#count-workers");
const cookie = (await context.cookies()).find((c) => c.name === "owp_session");
assert.ok(cookie && cookie.httpOnly && cookie.sameSite === "Strict", JSON.stringify(cookie));
assert.ok(!page.url().includes(TOKEN), "no token in the URL");

// --- overview counts match /v1/admin/state ---
step("the overview's counts match /v1/admin/state");
await page.waitForSelector("#live.on");
const state = await api(B, "GET", "/v1/admin/state");
const text = async (sel) => (await page.textContent(sel)).trim();
for (const s of ["ready", "leased", "in_progress", "pr_opened", "merged", "cancelled"]) {
  assert.equal(await text(`#count-${s}`), String(state[`tasks_${s}`]), s);
}
assert.equal(await text("#count-workers"), `${state.workers_online} / ${state.workers_total}`);
assert.ok((await page.textContent("main")).includes("acme/widgets"));
await page.screenshot({ path: `${SHOTS}/overview.png`, fullPage: true });

// --- live: a task created through replica B appears on A's page without a reload ---
step("a task created through the other replica appears within 2 s");
const before = Number(await text("#count-ready"));
const t0 = Date.now();
await api(B, "POST", "/v1/admin/tasks", { repo: "acme/docs", title: "Made elsewhere" });
await page.waitForFunction((n) => document.querySelector("#count-ready")?.textContent.trim() === String(n), before + 1, { timeout: 10000 });
const latency = Date.now() - t0;
console.log(`  appeared after ${latency} ms`);
assert.ok(latency <= 2000, `a change on another replica took ${latency} ms to appear`);

// --- tasks: list, filter, detail, requeue ---
step("tasks list, filter and detail");
await page.click("nav >> text=Tasks");
await page.waitForSelector("table >> text=Made elsewhere");
await page.selectOption("#f-status", "leased");
await page.click("form.filters button[type=submit]");
await page.waitForFunction(() => location.hash.includes("status=leased"));
// the filtered page lists the leased task and not the ready ones
await page.waitForFunction((id) => document.querySelector(`a[href="#/tasks/${id}"]`)
  && !document.querySelector("main").textContent.includes("Made elsewhere"), leased, { timeout: 10000 })
  .catch(async (e) => { console.log(page.url(), await page.textContent("main")); throw e; });
await page.screenshot({ path: `${SHOTS}/tasks.png`, fullPage: true });
step("a task created from the page");
await page.selectOption("#t-repo", "acme/docs");
await page.fill("#t-title", "Made in the browser");
await page.click("button:has-text('Create task')");
await page.waitForSelector("#notice:has-text('Created t_')");
const made = (await api(B, "GET", "/v1/tasks?repo=acme/docs&limit=200")).tasks.find((t) => t.title === "Made in the browser");
assert.ok(made, "the task exists");
// people, not ids: the worker column names the holder by name and handle
assert.ok((await page.textContent("main")).includes("alice (@alice)"), "the holder is named");
await page.click(`a[href="#/tasks/${leased}"]`);
await page.waitForSelector("text=Leases");
const fields = await page.textContent("dl.fields");
assert.match(fields, /tierbasic|tieruntrusted|tiertrusted|tiercore/, "the tier by name");
assert.ok(fields.includes("alice (@alice)"), "the worker by name");
await page.screenshot({ path: `${SHOTS}/task.png`, fullPage: true });
// a view's absent parts (no next page, no description) leave nothing behind: they once
// printed the word "null" under the tables
const strayNull = () => page.evaluate(() => [...document.getElementById("main").childNodes]
  .some((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim() === "null"));
assert.equal(await strayNull(), false, "the task page prints no stray null");

step("requeue from the page reaches the database");
await page.click("button:has-text('Requeue')");
await page.waitForSelector("#notice:has-text('Requeue: done')");
// the requeue changes the pool, so the page refreshes itself from the state stream within
// about a second; the action's answer must survive that refresh
await page.waitForTimeout(2000);
assert.match(await page.textContent("#notice"), /Requeue: done/, "the notice outlives a live refresh");
const detail = await api(B, "GET", `/v1/tasks/${leased}`);
assert.equal(detail.status, "ready");
assert.ok(detail.events.some((e) => e.event_type === "task_requeued" && e.actor === "admin"), "audited as the admin");

// --- claim approval: an untrusted worker's claim waits for the page's approval ---
step("a claim awaiting approval is approved from the task page");
await api(B, "POST", "/v1/admin/repos", { repo: "acme/gated", max_open_prs: 2, claim_approval: true });
const gatedTask = (await api(B, "POST", "/v1/admin/tasks", { repo: "acme/gated", title: "Needs a maintainer's yes" })).task_id;
const bob = await (await fetch(`${B}/v1/workers/register`, {
  method: "POST", headers: { "Content-Type": "application/json" },
  body: JSON.stringify({ name: "bob", skills: [], capacity_points: 5, max_concurrent_tasks: 3 }),
})).json();
const bobPoll = async () => (await (await fetch(`${B}/v1/work`, { headers: { Authorization: `Bearer ${bob.token}` } })).json()).leases;
const waiting = (await bobPoll()).find((l) => l.task_id === gatedTask);
assert.equal(waiting?.awaiting_approval, true, "bob's claim waits");
await page.goto(`${A}/#/tasks/${gatedTask}`);
await page.waitForSelector("text=awaiting your approval");
await page.click("button:has-text('Approve claim')");
await page.waitForSelector("#notice:has-text('Approve claim: done')");
assert.equal((await bobPoll()).find((l) => l.task_id === gatedTask).awaiting_approval, false, "approved");
await page.click("nav >> text=Repositories");
await page.waitForSelector("text=untrusted claims need approval");

// --- audit: filters and export ---
step("the audit log filters by repository and exports what it shows");
await page.click("nav >> text=Audit");
await page.fill("#a-repo", "acme/gated");
await page.click("form.filters button[type=submit]");
await page.waitForFunction(() => location.hash.includes("repo=acme%2Fgated"));
// the filtered page replaces the unfiltered one (which shows claim_approved too): wait for it
await page.waitForFunction(() => {
  const repos = [...document.querySelectorAll("table tbody tr td:nth-child(5)")].map((td) => td.textContent);
  return repos.length > 0 && repos.every((r) => r === "acme/gated");
}, null, { timeout: 10000 });
await page.waitForSelector("table >> text=claim_approved");
const auditRepos = await page.$$eval("table tbody tr td:nth-child(5)", (tds) => [...new Set(tds.map((td) => td.textContent))]);
assert.deepEqual(auditRepos, ["acme/gated"]);
assert.ok((await page.textContent("main")).includes("bob"), "the actor by name");
await page.screenshot({ path: `${SHOTS}/audit.png`, fullPage: true });
const csvHref = await page.getAttribute("#export-csv", "href");
const csv = await page.evaluate(async (href) => {
  const r = await fetch(href);
  return { status: r.status, type: r.headers.get("content-type"), body: await r.text() };
}, csvHref);
assert.equal(csv.status, 200);
assert.match(csv.type, /^text\/csv/);
const csvLines = csv.body.trim().split("\n");
assert.equal(csvLines[0], "id,timestamp,event_type,actor,target,details");
assert.ok(csvLines.length >= 4 && csvLines.slice(1).every((l) => l.includes("acme/gated")), csv.body);

// --- workers and repositories: act with confirmation ---
step("workers: pause and set a trust tier");
await page.click("nav >> text=Workers");
await page.waitForSelector("text=alice");
await page.click("button:has-text('Pause')");
await page.waitForSelector("#notice:has-text('pause done')");
assert.equal((await api(B, "GET", `/v1/workers/${reg.worker_id}`)).paused, true);
// a paused worker reads as paused, not "online · idle"; each row shows its reputation
await page.waitForSelector("text=paused by an admin");
const aliceRow = await page.textContent("tr:has-text('alice (@alice)')");
assert.match(aliceRow, /paused by an admin/);
assert.ok(aliceRow.includes(String((await api(B, "GET", `/v1/workers/${reg.worker_id}`)).reputation_score)), aliceRow);
await page.selectOption(`select[aria-label="Trust tier of alice"]`, "trusted");
await page.click("button:has-text('Set tier')");
await page.waitForSelector("#notice:has-text('alice is trusted')");
assert.equal((await api(B, "GET", `/v1/workers/${reg.worker_id}`)).trust_tier, "trusted");
await page.screenshot({ path: `${SHOTS}/workers.png`, fullPage: true });
assert.equal(await strayNull(), false, "the workers page prints no stray null");

step("repositories: create one");
await page.click("nav >> text=Repositories");
await page.fill("#r-repo", "acme/new");
await page.fill("#r-budget", "5");
await page.click("button:has-text('Save repository')");
await page.waitForSelector("#notice:has-text('acme/new saved')");
const repos = await api(B, "GET", "/v1/admin/repos");
assert.equal(repos.repositories.find((r) => r.repo === "acme/new").max_open_prs, 5);
await page.screenshot({ path: `${SHOTS}/repos.png`, fullPage: true });

step("notifications: make a channel, see its secret once, test it and remove it");
await page.click("nav >> text=Notifications");
await page.fill("#n-name", "maintainers");
await page.selectOption("#n-kind", "slack");
await page.fill("#n-url", "https://hooks.slack.com/services/T0/B0/secretpart");
await page.check("#n-ev-pr_stale");
await page.fill("#n-repo", "acme/widgets");
await page.click("button:has-text('Make channel')");
await page.waitForSelector("#notice:has-text('maintainers made')");
const secret = await page.textContent("#secret code");
assert.ok(secret.length >= 32, secret);
const channels = (await api(B, "GET", "/v1/admin/notifications")).channels;
assert.deepEqual(channels.map((c) => [c.name, c.kind, c.repo, c.events]), [["maintainers", "slack", "acme/widgets", ["pr_stale", "task_failed"]]]);
assert.ok(!(await page.textContent("main")).includes("secretpart"), "the URL's credential is not shown");
await page.click("button:has-text('I have copied it')");
await page.waitForSelector("#secret", { state: "detached" });
await page.click("button:has-text('Send test')");
await page.waitForSelector("#notice:has-text('Test for maintainers queued')");
await page.screenshot({ path: `${SHOTS}/notifications.png`, fullPage: true });
await page.click("button:has-text('Remove')");
await page.waitForSelector("#notice:has-text('maintainers removed')");
assert.deepEqual((await api(B, "GET", "/v1/admin/notifications")).channels, []);

// --- usable: names on every control, keyboard, a phone's width ---
step("every control has an accessible name; the keyboard reaches the views");
const unnamed = await page.evaluate(() => [...document.querySelectorAll("input, select, button, textarea")]
  .filter((el) => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim()))
  .map((el) => el.outerHTML));
assert.deepEqual(unnamed, []);
await page.goto(`${A}/#/`);
await page.reload();
await page.waitForSelector("#count-workers");
await page.keyboard.press("Tab");
assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");
const phone = await context.newPage();
await phone.setViewportSize({ width: 390, height: 844 });
await phone.goto(`${A}/#/`);
await phone.waitForSelector("#count-workers");
await phone.screenshot({ path: `${SHOTS}/overview-phone.png`, fullPage: true });
const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
const wide = await phone.evaluate(() => [...document.querySelectorAll("body *")]
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 5).map((el) => el.tagName + "." + el.className));
assert.ok(overflow <= 1, `the overview is ${overflow}px wider than a phone: ${wide.join(", ")}`);
await phone.close();

// --- a cookie action without the CSRF header is refused ---
step("an action with the cookie but without X-OWP-CSRF is refused");
const csrfless = await page.evaluate(async (id) => (await fetch(`/v1/tasks/${id}/cancel`, { method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" })).status, leased);
assert.equal(csrfless, 403);
assert.equal((await api(B, "GET", `/v1/tasks/${leased}`)).status, "ready");
consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((e) => !e.includes("403")));

// --- sign out ends the session everywhere ---
step("signing out ends the session on every replica");
await page.click("#signout");
await page.waitForSelector("#token");
const after = await page.evaluate(async () => (await fetch("/v1/admin/state")).status);
assert.equal(after, 401);
consoleErrors.splice(0, consoleErrors.length, ...consoleErrors.filter((e) => !e.includes("401")));

step("no console errors");
assert.deepEqual(consoleErrors, []);
await browser.close();
console.log(`dashboard: all checks passed in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${SHOTS}/`);
