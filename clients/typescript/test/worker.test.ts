// A worker's protocol through the SDK, against a live pool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PoolWorker, PoolError, call, unwrap, type Outcome } from "../src/index.js";
import { admin, baseUrl, createTask, eventually, fixture, registerWorker, taskStatus } from "./helpers.js";

test("register, heartbeat, a long poll woken by a new task, and a report through pr_opened to merged", async () => {
  const { repo, skill } = await fixture();
  const worker = await registerWorker(skill);
  const beat = unwrap(await worker.heartbeat("idle", "starting"));
  assert.equal(beat.ok, true);
  assert.equal(beat.worker_id, worker.workerId);

  // nothing to claim: the poll waits, and the task created meanwhile wakes it
  const started = Date.now();
  const polling = worker.poll({ wait: 20 });
  await new Promise((r) => setTimeout(r, 300));
  const taskId = await createTask(repo, skill);
  const work = unwrap(await polling);
  assert.ok(Date.now() - started < 15_000, "the new task woke the poll before its wait ran out");
  const lease = work.leases.find((l) => l.task_id === taskId);
  assert.ok(lease, "the poll granted the new task");
  assert.equal(lease.status, "leased");
  assert.equal(lease.repo, repo);

  const progress = unwrap(await worker.report(lease, "in_progress", { message: "on it" }));
  assert.equal(progress.status, "in_progress");
  assert.ok(progress.lease_expires_at, "an accepted report renews the lease");
  const prUrl = `https://github.com/${repo}/pull/7`;
  const opened = unwrap(await worker.report(lease, "pr_opened", { pr_url: prUrl }));
  assert.equal(opened.status, "pr_opened");
  assert.equal(opened.lease_expires_at ?? null, null, "pr_opened ends the lease");
  const merged = unwrap(await worker.report(lease, "merged"));
  assert.equal(merged.status, "merged");
  assert.equal(await taskStatus(taskId), "merged");
});

test("a report the protocol refuses is a typed error value, not an exception", async () => {
  const { repo, skill } = await fixture();
  const worker = await registerWorker(skill);
  const taskId = await createTask(repo, skill);
  const lease = unwrap(await worker.poll()).leases.find((l) => l.task_id === taskId);
  assert.ok(lease);
  // completed -> in_progress is no transition
  unwrap(await worker.report(lease, "completed"));
  const refused = await worker.report(lease, "in_progress");
  assert.ok(refused.error instanceof PoolError);
  assert.equal(refused.error.status, 409);
  assert.equal(refused.error.code, "conflict");
  assert.ok(refused.error.requestId, "every answer carries x-request-id");
  // a PR link of another repository is a validation error naming pr_url
  const other = await createTask(repo, skill);
  const second = unwrap(await worker.poll()).leases.find((l) => l.task_id === other);
  assert.ok(second);
  const bad = await worker.report(second, "pr_opened", { pr_url: "https://github.com/someone/else/pull/1" });
  assert.equal(bad.error?.code, "validation_error");
  assert.match(bad.error?.details ?? "", /pr_url/);
  // a stale lease id: lease_lost
  const stale = await worker.report({ task_id: other, lease_id: "l_not_this_one" }, "in_progress");
  assert.equal(stale.error?.leaseLost, true);
});

test("offers: accept one, reject the other with a reason", async () => {
  const { repo, skill } = await fixture();
  const worker = await registerWorker(skill);
  const a = await createTask(repo, skill, "offer a");
  const b = await createTask(repo, skill, "offer b");
  const offers = unwrap(await worker.offers());
  assert.deepEqual(offers.map((o) => o.task_id).sort(), [a, b].sort());
  const [first, second] = offers;
  assert.ok(first && second);
  const accepted = unwrap(await worker.accept(first.offer_id));
  assert.equal(accepted.task_id, first.task_id);
  assert.ok(accepted.lease_id.length > 0);
  unwrap(await worker.reject(second.offer_id, "skill_mismatch"));
  assert.equal(await taskStatus(first.task_id), "leased");
  assert.equal(await taskStatus(second.task_id), "ready");
  // an offer answered already is a conflict saying so
  const again = await worker.accept(second.offer_id);
  assert.equal(again.error?.code, "conflict");
  assert.equal(again.error?.details, "offer_rejected");
  // the accepted lease is worked like any other
  unwrap(await worker.report({ task_id: accepted.task_id, lease_id: accepted.lease_id }, "completed"));
});

test("run: works leases to completion, renews them, and reports a throw as failed", async () => {
  const { repo, skill } = await fixture();
  const worker = await registerWorker(skill);
  const good = await createTask(repo, skill, "good");
  const bad = await createTask(repo, skill, "bad");
  const stop = new AbortController();
  const expiries: Record<string, string[]> = {};
  const errors: string[] = [];
  const running = worker.run(
    async (job): Promise<Outcome> => {
      // the lease's expiry, read twice while renewals run every 200 ms
      for (let i = 0; i < 2; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const task = unwrap(await call(admin().GET("/v1/tasks/{task_id}", { params: { path: { task_id: job.lease.task_id } } })));
        (expiries[job.lease.task_id] ??= []).push(task.lease_expires_at ?? "");
        assert.equal(task.status, "in_progress", "run reports in_progress when the job starts");
      }
      if (job.lease.task_id === bad) throw new Error("the tests did not pass");
      return { status: "completed", message: "done by run" };
    },
    { wait: 2, signal: stop.signal, renewEveryMs: 200, onError: (e, where) => errors.push(`${where}: ${e.code}`) },
  );
  await eventually(async () => (await taskStatus(good)) === "completed" && (await taskStatus(bad)) !== "in_progress");
  stop.abort();
  await running;
  assert.deepEqual(errors, []);
  for (const id of [good, bad]) {
    const [first, second] = expiries[id] ?? [];
    assert.ok(first && second && Date.parse(second) > Date.parse(first), `${id}'s lease was renewed: ${first} -> ${second}`);
  }
  // the failed attempt is counted and the task is back in the queue (after its backoff)
  const failed = unwrap(await call(admin().GET("/v1/tasks/{task_id}", { params: { path: { task_id: bad } } })));
  assert.equal(failed.attempt, 1);
  assert.equal(failed.status, "ready");
  const events = unwrap(await call(admin().GET("/v1/audit/events", { params: { query: { target: bad, limit: 50 } } })));
  assert.ok(
    events.events.some((e) => JSON.stringify(e.details).includes("the tests did not pass")),
    "the throw's message is in the audit log",
  );
});

test("run: a lease lost mid-job aborts the job's signal and reports nothing more", async () => {
  const { repo, skill } = await fixture();
  const worker = await registerWorker(skill);
  const taskId = await createTask(repo, skill);
  const stop = new AbortController();
  let reason: unknown;
  const running = worker.run(
    async (job) => {
      // an admin requeues the task while the job runs; the next renewal learns it
      unwrap(await call(admin().POST("/v1/tasks/{task_id}/requeue", { params: { path: { task_id: taskId } }, body: {} })));
      await new Promise<void>((resolve) => job.signal.addEventListener("abort", () => resolve(), { once: true }));
      reason = job.signal.reason;
      stop.abort();
      return { status: "completed" };
    },
    { wait: 1, signal: stop.signal, renewEveryMs: 100 },
  );
  await running;
  assert.ok(reason instanceof PoolError && reason.leaseLost, `aborted by lease_lost, not ${String(reason)}`);
  // the task went back to the queue (and may have been leased again since): never completed
  assert.notEqual(await taskStatus(taskId), "completed", "the outcome was not reported on a lost lease");
});

test("run: a claim awaiting a maintainer's approval starts only once approved", async () => {
  const { repo, skill } = await fixture();
  unwrap(await call(admin().POST("/v1/admin/repos", { body: { repo, claim_approval: true } })));
  const worker = await registerWorker(skill);
  const taskId = await createTask(repo, skill);
  const stop = new AbortController();
  let started = "";
  const errors: string[] = [];
  const running = worker.run(
    async () => {
      started = await taskStatus(taskId);
      return { status: "completed" };
    },
    { wait: 1, signal: stop.signal, busyPollMs: 100, onError: (e, where) => errors.push(`${where}: ${e.code}`) },
  );
  await eventually(async () => (await taskStatus(taskId)) === "leased");
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(started, "", "the handler waits for the approval");
  const approved = await call(admin().POST("/v1/tasks/{task_id}/approve", { params: { path: { task_id: taskId } } }));
  assert.equal(approved.error, undefined);
  await eventually(async () => (await taskStatus(taskId)) === "completed");
  stop.abort();
  await running;
  assert.equal(started, "in_progress");
  assert.deepEqual(errors, []);
});

test("a revoked token is an auth_error, and run stops on it", async () => {
  const { skill } = await fixture();
  const worker = await registerWorker(skill);
  unwrap(await worker.heartbeat());
  unwrap(
    await call(
      admin().POST("/v1/workers/{worker_id}/revoke", { params: { path: { worker_id: worker.workerId ?? "" } } }),
    ),
  );
  const beat = await worker.heartbeat();
  assert.equal(beat.error?.code, "auth_error");
  assert.equal(beat.error?.status, 401);
  await assert.rejects(worker.run(async () => undefined, { wait: 1 }), (e: unknown) => {
    return e instanceof PoolError && e.code === "auth_error";
  });
});

test("a worker changes its own skills and repositories", async () => {
  const { repo, skill } = await fixture();
  const other = await fixture();
  const worker = await registerWorker("none-yet");
  await createTask(repo, skill);
  await createTask(other.repo, skill);
  assert.equal(unwrap(await worker.poll()).leases.length, 0);
  const now = unwrap(await worker.update({ skills: [skill], repos: [other.repo] }));
  assert.deepEqual(now.repos, [other.repo]);
  const leases = unwrap(await worker.poll()).leases;
  assert.deepEqual(leases.map((l) => l.repo), [other.repo]);
  const bad = await worker.update({ capacity_points: 0 });
  assert.equal(bad.error?.code, "validation_error");
  assert.match(bad.error?.details ?? "", /capacity_points/);
});

test("no answer at all is a network_error value", async () => {
  const worker = new PoolWorker({ baseUrl: "http://127.0.0.1:9", token: "x", retry: { attempts: 1 } });
  const beat = await worker.heartbeat();
  assert.equal(beat.error?.code, "network_error");
  assert.equal(beat.error?.retryable, true);
  void baseUrl;
});
