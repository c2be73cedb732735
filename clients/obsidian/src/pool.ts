// What the plugin asks of the pool, over the SDK: one place that knows the routes, so the
// views and commands stay about Obsidian. Every answer is a Result (errors are values).
import {
  call,
  createPoolClient,
  PoolError,
  PoolWorker,
  type FetchLike,
  type Lease,
  type PoolClient,
  type ReportedStatus,
  type Result,
  type TaskRequest,
  type TaskView,
} from "@owp/protocol";
import type { PoolSettings } from "./settings.js";

export interface TaskFilter {
  repo?: string;
  status?: TaskView["status"];
  skill?: string;
}

export class Pool {
  readonly admin: PoolClient | null;
  readonly worker: PoolWorker | null;
  private readonly anonymous: PoolClient;

  constructor(
    private readonly settings: PoolSettings,
    private readonly fetch: FetchLike,
  ) {
    const base = { baseUrl: settings.url, fetch, userAgent: "owp-pool-obsidian/0.1" };
    this.anonymous = createPoolClient(base);
    this.admin = settings.adminToken ? createPoolClient({ ...base, adminToken: settings.adminToken }) : null;
    this.worker = settings.workerToken
      ? new PoolWorker({ ...base, token: settings.workerToken, workerId: settings.workerId || undefined })
      : null;
  }

  info() {
    return call(this.anonymous.GET("/v1"));
  }

  state() {
    return call(this.needAdmin().GET("/v1/admin/state"));
  }

  /** Tasks by repo, status and skill, filtered by the server. */
  async tasks(filter: TaskFilter, limit = 100): Promise<Result<TaskView[]>> {
    const query: { repo?: string; status?: TaskView["status"]; skill?: string; limit: number } = { limit };
    if (filter.repo) query.repo = filter.repo;
    if (filter.status) query.status = filter.status;
    const skill = filter.skill?.trim().toLowerCase();
    if (skill) query.skill = skill;
    const result = await call(this.needAdmin().GET("/v1/tasks", { params: { query } }));
    if (result.error) return result;
    return { data: result.data.tasks };
  }

  task(taskId: string) {
    return call(this.needAdmin().GET("/v1/tasks/{task_id}", { params: { path: { task_id: taskId } } }));
  }

  requeue(taskId: string) {
    return call(this.needAdmin().POST("/v1/tasks/{task_id}/requeue", { params: { path: { task_id: taskId } }, body: {} }));
  }

  cancel(taskId: string) {
    return call(this.needAdmin().POST("/v1/tasks/{task_id}/cancel", { params: { path: { task_id: taskId } } }));
  }

  workers() {
    return call(this.needAdmin().GET("/v1/workers", { params: { query: { limit: 200 } } }));
  }

  reputation(workerId: string) {
    return call(this.needAdmin().GET("/v1/workers/{worker_id}/reputation", { params: { path: { worker_id: workerId } } }));
  }

  repos() {
    return call(this.needAdmin().GET("/v1/admin/repos"));
  }

  analytics(repo: string, period: "7d" | "30d" | "90d" = "30d") {
    const [owner, name] = repo.split("/");
    if (!owner || !name) return Promise.resolve(invalid(`${repo} is not owner/name`));
    return call(
      this.needAdmin().GET("/v1/analytics/repositories/{owner}/{repo}", {
        params: { path: { owner, repo: name }, query: { period } },
      }),
    );
  }

  createTask(task: TaskRequest) {
    return call(this.needAdmin().POST("/v1/admin/tasks", { body: task }));
  }

  // a worker's side

  heartbeat() {
    return this.needWorker().heartbeat("idle", "from Obsidian");
  }

  claim() {
    return this.needWorker().poll();
  }

  report(lease: Pick<Lease, "task_id" | "lease_id">, status: ReportedStatus, message?: string, prUrl?: string) {
    const fields: { message?: string; pr_url?: string } = {};
    if (message) fields.message = message;
    if (prUrl) fields.pr_url = prUrl;
    return this.needWorker().report(lease, status, fields);
  }

  private needAdmin(): PoolClient {
    if (!this.admin) throw new PoolError({ code: "auth_error", status: 0, message: "no admin token in the settings" });
    return this.admin;
  }

  private needWorker(): PoolWorker {
    if (!this.worker) throw new PoolError({ code: "auth_error", status: 0, message: "not registered as a worker" });
    return this.worker;
  }
}

function invalid(message: string): Result<never> {
  return { error: new PoolError({ code: "validation_error", status: 0, message }) };
}
