// A maintainer's calls through the typed client, against a live pool.
import { test } from "node:test";
import assert from "node:assert/strict";
import { call, createPoolClient, unwrap } from "../src/index.js";
import { admin, baseUrl, createTask, fixture, registerWorker, taskStatus, unique } from "./helpers.js";

test("service info names the protocol and where the document is", async () => {
  const info = unwrap(await call(createPoolClient({ baseUrl }).GET("/v1")));
  assert.equal(info.name, "owp-pool");
  assert.equal(info.protocol_version, "1");
  assert.ok(info.compatible_with.includes("0.1"), info.compatible_with.join());
  assert.equal(info.openapi, "/openapi.json");
});

test("repos, bulk tasks, lists, requeue and cancel, trust tier and reputation", async () => {
  const { repo, skill } = await fixture(5);
  const repos = unwrap(await call(admin().GET("/v1/admin/repos")));
  assert.ok(repos.repositories.some((r) => r.repo === repo));

  const bulk = unwrap(
    await call(
      admin().POST("/v1/admin/tasks", {
        body: [
          { repo, title: "one", required_skills: [skill], external_id: "yaml:one" },
          { repo, title: "two", required_skills: [skill], external_id: "yaml:two", priority: 50 },
        ],
      }),
    ),
  );
  assert.ok("task_ids" in bulk);
  assert.equal(bulk.created, 2);
  const [one, two] = bulk.task_ids;
  assert.ok(one && two);
  // importing the same source again makes nothing new
  const again = unwrap(
    await call(admin().POST("/v1/admin/tasks", { body: [{ repo, title: "one", required_skills: [skill], external_id: "yaml:one" }] })),
  );
  assert.ok("task_ids" in again);
  assert.equal(again.created, 0);
  assert.deepEqual(again.task_ids, [one]);

  const listed = unwrap(await call(admin().GET("/v1/tasks", { params: { query: { repo, status: "ready" } } })));
  assert.deepEqual(listed.tasks.map((t) => t.task_id).sort(), [one, two].sort());

  const worker = await registerWorker(skill);
  const leases = unwrap(await worker.poll()).leases;
  assert.equal(leases.length, 2);
  assert.equal(leases[0]?.task_id, two, "higher priority first");
  unwrap(await call(admin().POST("/v1/tasks/{task_id}/requeue", { params: { path: { task_id: one } }, body: {} })));
  assert.equal(await taskStatus(one), "ready");
  unwrap(await call(admin().POST("/v1/tasks/{task_id}/cancel", { params: { path: { task_id: two } } })));
  assert.equal(await taskStatus(two), "cancelled");
  // the holder's next report learns it
  const lease = leases.find((l) => l.task_id === two);
  assert.ok(lease);
  assert.equal((await worker.report(lease, "in_progress")).error?.leaseLost, true);

  const workerId = worker.workerId ?? "";
  const tier = unwrap(
    await call(
      admin().POST("/v1/workers/{worker_id}/trust-tier", { params: { path: { worker_id: workerId } }, body: { tier: "maintainer", reason: "sdk test" } }),
    ),
  );
  assert.equal(tier.trust_tier, "core", "v0.1's maintainer is this pool's core");
  const reputation = unwrap(
    await call(admin().GET("/v1/workers/{worker_id}/reputation", { params: { path: { worker_id: workerId } } })),
  );
  assert.equal(reputation.worker_id, workerId);

  const state = unwrap(await call(admin().GET("/v1/admin/state")));
  const mine = state.repositories.find((r) => r.repo === repo);
  assert.ok(mine, "the state lists the repo");
});

test("admin routes refuse a worker token and a wrong admin token alike", async () => {
  const { skill } = await fixture();
  const worker = await registerWorker(skill);
  const asWorker = await call(worker.client.GET("/v1/admin/state"));
  assert.equal(asWorker.error?.code, "auth_error");
  const wrong = await call(createPoolClient({ baseUrl, adminToken: unique("wrong"), retry: { attempts: 1 } }).GET("/v1/admin/state"));
  assert.equal(wrong.error?.status, 401);
});

test("a bad request names its field", async () => {
  const created = await call(admin().POST("/v1/admin/tasks", { body: { repo: "sdk/none-such", title: "" } }));
  assert.equal(created.error?.code, "validation_error");
  assert.match(created.error?.details ?? "", /title/);
});
