// A worker's side of the protocol: register, heartbeat, poll (long poll), report under the
// lease, offers; and `run`, the loop that keeps a worker's leases worked and renewed.
import { call, createPoolClient, type ClientOptions, type PoolClient, type Result } from "./client.js";
import { PoolError } from "./errors.js";
import { backoffDelay, sleep } from "./retry.js";
import type {
  AcceptResponse,
  HeartbeatResponse,
  Lease,
  OfferView,
  RegisterRequest,
  RegisterResponse,
  RejectReason,
  ReportedStatus,
  StatusRequest,
  StatusResponse,
  WorkResponse,
  WorkerPatch,
  WorkerSettings,
  WorkerStatus,
} from "./types.js";

/** What a report carries besides its status and lease (message, artifact, pr_url). */
export type ReportFields = Omit<StatusRequest, "status" | "lease_id">;

/** How a job ended, reported by `run` under the job's lease. */
export type Outcome = ReportFields & {
  status: Extract<ReportedStatus, "completed" | "pr_opened" | "failed" | "released" | "blocked">;
};

/** What a handler gets with its lease. */
export interface Job {
  lease: Lease;
  /** aborted when the lease is lost (`reason` a PoolError) or the worker stops */
  signal: AbortSignal;
  /** a report under this job's lease (progress, `blocked`, a PR…); renewals follow it */
  report(status: ReportedStatus, fields?: ReportFields): Promise<Result<StatusResponse>>;
}

export type Handler = (job: Job) => Promise<Outcome | void>;

export interface RunOptions {
  /** long-poll wait per poll, seconds (0-60, default 30) */
  wait?: number;
  /** stops polling; running jobs see their signal abort and are released if they throw */
  signal?: AbortSignal;
  /** renew each lease this often (default a third of its remaining time, at most 10 min) */
  renewEveryMs?: number;
  /** pause between polls while every granted lease is busy (default 5 s) */
  busyPollMs?: number;
  /** errors `run` survives (a failed report, a network error); default: none reported */
  onError?: (error: PoolError, context: string) => void;
}

export interface WorkerOptions extends ClientOptions {
  token: string;
  workerId?: string;
}

export class PoolWorker {
  readonly client: PoolClient;
  readonly workerId: string | undefined;

  constructor(options: WorkerOptions) {
    this.client = createPoolClient(options);
    this.workerId = options.workerId;
  }

  /** Registers a new worker; its token is in `registration` (shown once: keep it). */
  static async register(
    options: ClientOptions & { registrationToken?: string },
    request: RegisterRequest,
  ): Promise<Result<{ worker: PoolWorker; registration: RegisterResponse }>> {
    const client = createPoolClient(options);
    const headers = options.registrationToken ? { "x-registration-token": options.registrationToken } : undefined;
    const result = await call(client.POST("/v1/workers/register", { body: request, headers }));
    if (result.error) return result;
    const registration = result.data;
    const worker = new PoolWorker({ ...options, token: registration.token, workerId: registration.worker_id });
    return { data: { worker, registration } };
  }

  heartbeat(status?: WorkerStatus, note?: string): Promise<Result<HeartbeatResponse>> {
    return call(this.client.POST("/v1/workers/heartbeat", { body: { status, note } }));
  }

  /** Changes the worker's own skills, capacity or repositories (`repos: []`: any). */
  update(fields: WorkerPatch): Promise<Result<WorkerSettings>> {
    return call(this.client.PATCH("/v1/workers/me", { body: fields }));
  }

  /** Claims up to free capacity; answers every live lease. With `wait`, a poll that finds
   * nothing waits up to that many seconds for work. */
  poll(options: { wait?: number; max?: number; signal?: AbortSignal } = {}): Promise<Result<WorkResponse>> {
    const query: { wait?: number; max?: number } = {};
    if (options.wait !== undefined) query.wait = options.wait;
    if (options.max !== undefined) query.max = options.max;
    return call(this.client.GET("/v1/work", { params: { query }, signal: options.signal }));
  }

  /** A status report under the lease (its `lease_id` always sent, so a late report of an
   * old attempt can never land on a new one). */
  report(
    lease: Pick<Lease, "task_id" | "lease_id">,
    status: ReportedStatus,
    fields: ReportFields = {},
  ): Promise<Result<StatusResponse>> {
    return call(
      this.client.POST("/v1/tasks/{task_id}/status", {
        params: { path: { task_id: lease.task_id } },
        body: { ...fields, status, lease_id: lease.lease_id },
      }),
    );
  }

  async offers(max?: number): Promise<Result<OfferView[]>> {
    const result = await call(this.client.POST("/v1/work/offers", { params: { query: max === undefined ? {} : { max } } }));
    return result.error ? result : { data: result.data.offers };
  }

  accept(offerId: string): Promise<Result<AcceptResponse>> {
    return call(this.client.POST("/v1/work/offers/{offer_id}/accept", { params: { path: { offer_id: offerId } } }));
  }

  async reject(offerId: string, reason: RejectReason): Promise<Result<void>> {
    const result = await call(
      this.client.POST("/v1/work/offers/{offer_id}/reject", { params: { path: { offer_id: offerId } }, body: { reason } }),
    );
    return result.error ? result : { data: undefined };
  }

  /** Works leases until `options.signal` aborts: long-polls, hands each new lease to
   * `handle`, renews it while the handler runs, and reports the handler's outcome (a
   * throw is `failed` with its message; one after the stop signal is `released`). Rejects
   * only on an error no retry mends (a revoked or unknown token: `auth_error`). */
  async run(handle: Handler, options: RunOptions = {}): Promise<void> {
    const loop = new RunLoop(this, handle, options);
    await loop.run();
  }
}

/** One `run`: the jobs in flight, keyed by task id. */
class RunLoop {
  private readonly jobs = new Map<string, Promise<void>>();
  private readonly stop: AbortSignal;

  constructor(
    private readonly worker: PoolWorker,
    private readonly handle: Handler,
    private readonly options: RunOptions,
  ) {
    this.stop = options.signal ?? new AbortController().signal;
  }

  async run(): Promise<void> {
    let failures = 0;
    try {
      while (!this.stop.aborted) {
        const polled = await this.worker.poll({ wait: this.options.wait ?? 30, signal: this.stop });
        if (this.stop.aborted) break;
        if (polled.error) {
          if (!polled.error.retryable) throw polled.error;
          failures++;
          this.options.onError?.(polled.error, "poll");
          await sleep(backoffDelay(null, Math.min(failures, 8)), this.stop).catch(() => undefined);
          continue;
        }
        failures = 0;
        // a claim awaiting a maintainer's approval (claim_approval) starts when approved
        const waiting = polled.data.leases.some((lease) => lease.awaiting_approval);
        const fresh = polled.data.leases.filter((lease) => !this.jobs.has(lease.task_id) && !lease.awaiting_approval);
        for (const lease of fresh) this.start(lease);
        if (fresh.length === 0 && (this.jobs.size > 0 || waiting)) {
          // at capacity the poll answers at once: wait for a job to end, or a while
          await Promise.race([...this.jobs.values(), sleep(this.options.busyPollMs ?? 5_000, this.stop)]).catch(
            () => undefined,
          );
        }
      }
    } finally {
      await Promise.allSettled(this.jobs.values());
    }
  }

  private start(lease: Lease): void {
    const job = this.work(lease).finally(() => this.jobs.delete(lease.task_id));
    this.jobs.set(lease.task_id, job);
  }

  private async work(lease: Lease): Promise<void> {
    const lost = new AbortController();
    const signal = AbortSignal.any([lost.signal, this.stop]);
    let current: ReportedStatus = lease.status as ReportedStatus;
    const report = async (status: ReportedStatus, fields?: ReportFields) => {
      const result = await this.worker.report(lease, status, fields);
      if (result.error) {
        if (ends(result.error)) lost.abort(result.error);
      } else {
        current = status;
      }
      return result;
    };
    // the work has started: leased -> in_progress (a held lease resumed keeps its status)
    if (current === "leased") await this.note(report("in_progress"), "start");
    const renewal = this.renew(lease, () => current, report, signal);
    let outcome: Outcome | void;
    try {
      outcome = await this.handle({ lease, signal, report });
    } catch (error) {
      if (lost.signal.aborted) return;
      const message = error instanceof Error ? error.message : String(error);
      outcome = this.stop.aborted
        ? { status: "released", message: "the worker stopped" }
        : { status: "failed", message: message.slice(0, 2000) };
    } finally {
      renewal.abort();
    }
    if (outcome && !lost.signal.aborted) {
      const { status, ...fields } = outcome;
      await this.note(report(status, fields), `report ${status}`);
    }
  }

  /** Renews the lease (repeats the current status) until the job ends. */
  private renew(
    lease: Lease,
    current: () => ReportedStatus,
    report: (status: ReportedStatus) => Promise<Result<StatusResponse>>,
    jobSignal: AbortSignal,
  ): AbortController {
    const done = new AbortController();
    const signal = AbortSignal.any([done.signal, jobSignal]);
    let expiresAt = Date.parse(lease.lease_expires_at);
    void (async () => {
      while (!signal.aborted) {
        const every = this.options.renewEveryMs ?? Math.min(600_000, Math.max(1_000, (expiresAt - Date.now()) / 3));
        try {
          await sleep(every, signal);
        } catch {
          return;
        }
        const status = current();
        if (status !== "in_progress" && status !== "blocked") continue;
        const result = await report(status);
        if (result.data?.lease_expires_at) expiresAt = Date.parse(result.data.lease_expires_at);
        if (result.error) this.options.onError?.(result.error, "renew");
      }
    })();
    return done;
  }

  private async note(pending: Promise<Result<unknown>>, context: string): Promise<void> {
    const result = await pending;
    if (result.error) this.options.onError?.(result.error, context);
  }
}

/** The answers that end a job's claim on its task: the lease is gone, or never was ours. */
function ends(error: PoolError): boolean {
  return error.leaseLost || error.code === "forbidden" || error.code === "not_found";
}
