//! Every metric the service exports: names, help texts and the recorder, in one place.
//! Labels are low-cardinality by construction: route templates, statuses, reasons, codes.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "owp_http_requests_total";
pub const HTTP_DURATION: &str = "owp_http_request_duration_seconds";
pub const API_ERRORS: &str = "owp_api_errors_total";
pub const AUTH_FAILURES: &str = "owp_auth_failures_total";
pub const REGISTRATIONS: &str = "owp_worker_registrations_total";
pub const POLLS: &str = "owp_polls_total";
pub const LEASES_CLAIMED: &str = "owp_leases_claimed_total";
pub const CLAIMED_PER_POLL: &str = "owp_claimed_per_poll";
pub const CLAIM_DURATION: &str = "owp_claim_duration_seconds";
pub const LEASES_RENEWED: &str = "owp_leases_renewed_total";
pub const LEASES_RELEASED: &str = "owp_leases_released_total";
pub const LEASES_EXPIRED: &str = "owp_leases_expired_total";
pub const TASKS_REQUEUED: &str = "owp_tasks_requeued_total";
pub const TRANSITIONS: &str = "owp_task_transitions_total";
pub const TASKS_CREATED: &str = "owp_tasks_created_total";
pub const WORKERS_MARKED_OFFLINE: &str = "owp_workers_marked_offline_total";
pub const IS_LEADER: &str = "owp_scheduler_is_leader";
pub const SWEEP_DURATION: &str = "owp_scheduler_sweep_duration_seconds";
pub const SWEEP_ROWS: &str = "owp_scheduler_sweep_rows";
pub const LAST_SWEEP: &str = "owp_scheduler_last_sweep_timestamp_seconds";
pub const LEADER_CHANGES: &str = "owp_scheduler_leadership_changes_total";
pub const DB_RETRYABLE_ERRORS: &str = "owp_db_retryable_errors_total";
pub const RATE_LIMITED: &str = "owp_rate_limited_total";
pub const HTTP_CONNECTIONS: &str = "owp_http_connections";
pub const REQUEST_TIMEOUTS: &str = "owp_http_request_timeouts_total";
pub const SSE_STREAMS: &str = "owp_sse_streams";
pub const RETENTION_PRUNED: &str = "owp_retention_pruned_rows_total";
pub const REPUTATION_DRIFT: &str = "owp_reputation_drift_workers";
pub const REPUTATION_REPAIRS: &str = "owp_reputation_repairs_total";
pub const PROMOTIONS: &str = "owp_worker_promotions_total";
pub const OFFERS_MADE: &str = "owp_offers_made_total";
pub const LONG_POLLS_WAITING: &str = "owp_long_polls_waiting";
pub const LONG_POLL_WAKEUPS: &str = "owp_long_poll_wakeups_total";
pub const OFFERS_ENDED: &str = "owp_offers_ended_total";
pub const GITHUB_WEBHOOKS: &str = "owp_github_webhooks_total";
pub const GITHUB_OUTBOX: &str = "owp_github_outbox_total";
pub const GITHUB_OUTBOX_PENDING: &str = "owp_github_outbox_pending";
pub const NOTIFICATIONS: &str = "owp_notifications_total";
pub const NOTIFICATIONS_PENDING: &str = "owp_notifications_pending";
pub const DUTY_RUNS: &str = "owp_duty_runs_total";
pub const LIVENESS_STAMPS: &str = "owp_liveness_stamps_total";
pub const DUTY_LAST_SUCCESS: &str = "owp_duty_last_success_timestamp_seconds";

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
const COUNT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 1000.0];

mod reports;
pub use reports::*;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (tests start many apps in one process).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full(CLAIMED_PER_POLL.into()), COUNT_BUCKETS)
                })
                .and_then(|b| {
                    // the sweeps' rows and the report batches' (`reports`)
                    b.set_buckets_for_metric(Matcher::Suffix("_rows".into()), COUNT_BUCKETS)
                })
                .expect("bucket lists are non-empty constants")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            describe();
            describe_pool_gauges();
            reports::describe();
            handle
        })
        .clone()
}

fn describe() {
    describe_counter!(
        GITHUB_WEBHOOKS,
        "GitHub webhook deliveries, by event and result (applied, ignored, duplicate, refused)."
    );
    describe_counter!(
        GITHUB_OUTBOX,
        "Write-back events to GitHub by result: delivered, retried, gave_up."
    );
    describe_counter!(
        NOTIFICATIONS,
        "Notifications to channels by result: delivered, retried, gave_up."
    );
    describe_gauge!(
        NOTIFICATIONS_PENDING,
        "Notifications waiting for delivery (seen by the leader)."
    );
    describe_gauge!(
        GITHUB_OUTBOX_PENDING,
        "Write-back events not delivered yet (the leader's last count)."
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "HTTP request latency, by method, route template and status."
    );
    describe_counter!(API_ERRORS, "Error answers, by error code.");
    describe_counter!(
        AUTH_FAILURES,
        "Requests refused for missing or wrong credentials, by kind (worker, admin, registration)."
    );
    describe_counter!(REGISTRATIONS, "Workers registered.");
    describe_counter!(POLLS, "Work polls served.");
    describe_counter!(LEASES_CLAIMED, "Leases granted to workers.");
    describe_histogram!(CLAIMED_PER_POLL, "New leases granted per poll.");
    describe_histogram!(
        CLAIM_DURATION,
        Unit::Seconds,
        "Duration of the claim transaction of one poll."
    );
    describe_counter!(
        LEASES_RENEWED,
        "Leases renewed by a holder's status report."
    );
    describe_counter!(
        LEASES_RELEASED,
        "Leases ended by their holder (released, completed, failed, pr_opened)."
    );
    describe_counter!(
        LEASES_EXPIRED,
        "Leases that expired without progress and were ended by the scheduler."
    );
    describe_counter!(
        TASKS_REQUEUED,
        "Tasks returned to the ready queue, by reason."
    );
    describe_counter!(
        TRANSITIONS,
        "Task status changes, by reported target status."
    );
    describe_counter!(TASKS_CREATED, "Tasks created by admins.");
    describe_counter!(
        WORKERS_MARKED_OFFLINE,
        "Workers marked offline after missing heartbeats."
    );
    describe_gauge!(
        IS_LEADER,
        "1 on the replica that currently leads the scheduler, else 0."
    );
    describe_histogram!(
        SWEEP_DURATION,
        Unit::Seconds,
        "Duration of one scheduler sweep, by duty."
    );
    describe_histogram!(SWEEP_ROWS, "Rows changed by one scheduler sweep, by duty.");
    describe_counter!(
        LIVENESS_STAMPS,
        "Workers' last_heartbeat written by this replica's coalesced liveness flush."
    );
    describe_counter!(
        DUTY_RUNS,
        "Runs of each leader duty, by duty and result (ok, error)."
    );
    describe_gauge!(
        DUTY_LAST_SUCCESS,
        Unit::Seconds,
        "Unix time of each leader duty's last successful run on this replica."
    );
    describe_gauge!(
        LAST_SWEEP,
        Unit::Seconds,
        "Unix time of the last completed sweep on this replica."
    );
    describe_counter!(
        DB_RETRYABLE_ERRORS,
        "Database errors that mean try again (answered 503), by SQLSTATE."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests answered 429, by limit (worker, ip, in_flight)."
    );
    describe_gauge!(HTTP_CONNECTIONS, "Open client connections on this replica.");
    describe_counter!(
        REQUEST_TIMEOUTS,
        "Requests cut off by OWP_REQUEST_TIMEOUT, by route template."
    );
    describe_gauge!(SSE_STREAMS, "Open state streams on this replica.");
    describe_counter!(
        RETENTION_PRUNED,
        "Rows deleted by the retention duty, by table."
    );
    describe_gauge!(
        REPUTATION_DRIFT,
        "Workers whose reputation counters differed from their lease history at the last reconciliation (0 when all is well)."
    );
    describe_counter!(
        REPUTATION_REPAIRS,
        "Reputation counters the reconciliation found drifted and repaired."
    );
    describe_counter!(OFFERS_MADE, "Offers made to workers.");
    describe_gauge!(
        LONG_POLLS_WAITING,
        "Long polls (GET /v1/work?wait=N) waiting for work on this replica."
    );
    describe_counter!(
        LONG_POLL_WAKEUPS,
        "Waiting long polls woken, by cause (local, remote, relay, fallback, reconnect)."
    );
    describe_counter!(
        OFFERS_ENDED,
        "Offers ended, by outcome (accepted, rejected, expired, withdrawn)."
    );
    describe_counter!(
        PROMOTIONS,
        "Workers promoted by the automatic promotion rule, by tier."
    );
    describe_counter!(
        LEADER_CHANGES,
        "Times this replica gained or lost scheduler leadership, by event."
    );
}

pub fn http_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    let labels = [
        ("method", method.to_string()),
        ("route", route.to_string()),
        ("status", status.to_string()),
    ];
    counter!(HTTP_REQUESTS, &labels).increment(1);
    histogram!(HTTP_DURATION, &labels).record(elapsed.as_secs_f64());
}

pub fn db_retryable_error(sqlstate: &str) {
    counter!(DB_RETRYABLE_ERRORS, "sqlstate" => sqlstate.to_string()).increment(1);
}

pub fn count_error(code: &'static str) {
    counter!(API_ERRORS, "code" => code).increment(1);
}

pub fn auth_failure(kind: &'static str) {
    counter!(AUTH_FAILURES, "kind" => kind).increment(1);
}

pub fn leases_claimed(n: usize) {
    counter!(POLLS).increment(1);
    counter!(LEASES_CLAIMED).increment(n as u64);
    histogram!(CLAIMED_PER_POLL).record(n as f64);
}

pub fn claim_duration(elapsed: Duration) {
    histogram!(CLAIM_DURATION).record(elapsed.as_secs_f64());
}

pub fn transition(to: &'static str, ended_lease: bool, requeue_reason: Option<&'static str>) {
    counter!(TRANSITIONS, "to" => to).increment(1);
    if ended_lease {
        counter!(LEASES_RELEASED).increment(1);
    }
    if let Some(reason) = requeue_reason {
        counter!(TASKS_REQUEUED, "reason" => reason).increment(1);
    }
}

pub fn lease_renewed() {
    counter!(LEASES_RENEWED).increment(1);
}

pub fn registration() {
    counter!(REGISTRATIONS).increment(1);
}

pub fn github_webhook(event: &str, result: &'static str) {
    // events are GitHub's names; anything else is counted as "other" (bounded labels)
    const KNOWN: [&str; 4] = ["ping", "pull_request", "issues", "installation"];
    let event = KNOWN.into_iter().find(|k| *k == event).unwrap_or("other");
    counter!(GITHUB_WEBHOOKS, "event" => event, "result" => result).increment(1);
}

pub fn github_outbox(result: &'static str) {
    counter!(GITHUB_OUTBOX, "result" => result).increment(1);
}

pub fn github_outbox_pending(n: i64) {
    gauge!(GITHUB_OUTBOX_PENDING).set(n as f64);
}

pub fn notifications(result: &'static str) {
    counter!(NOTIFICATIONS, "result" => result).increment(1);
}

pub fn notifications_pending(n: i64) {
    gauge!(NOTIFICATIONS_PENDING).set(n as f64);
}

pub fn tasks_created(n: usize) {
    counter!(TASKS_CREATED).increment(n as u64);
}

pub fn set_leader(is_leader: bool) {
    gauge!(IS_LEADER).set(if is_leader { 1.0 } else { 0.0 });
    counter!(LEADER_CHANGES, "event" => if is_leader { "gained" } else { "lost" }).increment(1);
}

pub fn sweep(duty: &'static str, rows: u64, elapsed: Duration) {
    histogram!(SWEEP_DURATION, "duty" => duty).record(elapsed.as_secs_f64());
    histogram!(SWEEP_ROWS, "duty" => duty).record(rows as f64);
}

pub fn liveness_stamped(n: u64) {
    counter!(LIVENESS_STAMPS).increment(n);
}

/// One run of a leader duty ended, well or not.
pub fn duty_run(duty: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "error" };
    counter!(DUTY_RUNS, "duty" => duty, "result" => result).increment(1);
    if ok {
        gauge!(DUTY_LAST_SUCCESS, "duty" => duty).set(unix_now());
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

pub fn sweep_completed(unix_secs: f64) {
    gauge!(LAST_SWEEP).set(unix_secs);
}

pub fn leases_expired(n: u64) {
    counter!(LEASES_EXPIRED).increment(n);
}

pub fn requeued(reason: &'static str, n: u64) {
    counter!(TASKS_REQUEUED, "reason" => reason).increment(n);
}

pub fn workers_marked_offline(n: u64) {
    counter!(WORKERS_MARKED_OFFLINE).increment(n);
}

pub const DB_POOL_SIZE: &str = "owp_db_pool_connections";
pub const DB_ACQUIRE: &str = "owp_db_acquire_duration_seconds";
pub const DB_UP: &str = "owp_db_up";
pub const TASKS: &str = "owp_tasks";
pub const WORKERS_ONLINE: &str = "owp_workers_online";
pub const REPO_OPEN: &str = "owp_repo_open_slots";
pub const REPO_BUDGET: &str = "owp_repo_max_open_prs";
pub const OLDEST_READY: &str = "owp_oldest_ready_task_age_seconds";
pub const REPO_STALE_PRS: &str = "owp_repo_stale_prs";
pub const DB_POOL_IDLE: &str = "owp_db_pool_idle_connections";
pub const DB_POOL_MAX: &str = "owp_db_pool_max_connections";

pub fn db_acquire(elapsed: Duration) {
    histogram!(DB_ACQUIRE).record(elapsed.as_secs_f64());
}

fn describe_pool_gauges() {
    describe_gauge!(
        DB_POOL_SIZE,
        "Connections currently open in this replica's pool."
    );
    describe_gauge!(DB_POOL_IDLE, "Idle connections in this replica's pool.");
    describe_gauge!(
        DB_POOL_MAX,
        "Most connections this replica's pool may open."
    );
    describe_histogram!(
        DB_ACQUIRE,
        Unit::Seconds,
        "Wait for a pooled connection plus BEGIN, per transaction."
    );
    describe_gauge!(
        DB_UP,
        "1 when this replica's last periodic read of the pool overview reached the database, else 0."
    );
    describe_gauge!(
        TASKS,
        "Tasks by status (the whole pool, read every OWP_GAUGES_INTERVAL)."
    );
    describe_gauge!(
        WORKERS_ONLINE,
        "Workers online: heartbeat within the timeout."
    );
    describe_gauge!(
        REPO_OPEN,
        "Open slots in use per repository (leased, in_progress, blocked, pr_opened)."
    );
    describe_gauge!(REPO_BUDGET, "Review budget (max_open_prs) per repository.");
    describe_gauge!(
        REPO_STALE_PRS,
        "pr_opened tasks with no merge or close for OWP_PR_STALE_AFTER, per repository."
    );
    describe_gauge!(
        OLDEST_READY,
        "How long the longest-waiting ready task has been ready."
    );
}

/// This process's request pool and leadership, set at scrape time (no database involved).
pub fn process_gauges(pool_size: u32, pool_idle: usize, pool_max: u32, is_leader: bool) {
    gauge!(DB_POOL_SIZE).set(f64::from(pool_size));
    gauge!(DB_POOL_IDLE).set(pool_idle as f64);
    gauge!(DB_POOL_MAX).set(f64::from(pool_max));
    gauge!(IS_LEADER).set(if is_leader { 1.0 } else { 0.0 });
}

/// Whether the last periodic read of the pool overview reached the database.
pub fn db_up(up: bool) {
    gauge!(DB_UP).set(if up { 1.0 } else { 0.0 });
}

pub fn tasks_in_status(status: &'static str, n: i64) {
    gauge!(TASKS, "status" => status).set(n as f64);
}

pub fn workers_online(n: i64) {
    gauge!(WORKERS_ONLINE).set(n as f64);
}

pub fn repo_slots(repo: &str, open: i64, budget: i32, stale: i64) {
    gauge!(REPO_OPEN, "repo" => repo.to_string()).set(open as f64);
    gauge!(REPO_BUDGET, "repo" => repo.to_string()).set(f64::from(budget));
    gauge!(REPO_STALE_PRS, "repo" => repo.to_string()).set(stale as f64);
}

pub fn oldest_ready(age_secs: f64) {
    gauge!(OLDEST_READY).set(age_secs);
}

/// A request refused by one of the limits (`worker`, `ip`, `in_flight`).
pub fn rate_limited(limit: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit).increment(1);
}

pub fn http_connections(open: usize) {
    gauge!(HTTP_CONNECTIONS).set(open as f64);
}

pub fn request_timeout(route: &str) {
    counter!(REQUEST_TIMEOUTS, "route" => route.to_string()).increment(1);
}

pub fn sse_streams(open: usize) {
    gauge!(SSE_STREAMS).set(open as f64);
}

pub fn retention_pruned(table: &'static str, n: u64) {
    counter!(RETENTION_PRUNED, "table" => table).increment(n);
}

/// What the reputation reconciliation found: drifted workers (repaired).
pub fn reputation_reconciled(drifted: u64) {
    gauge!(REPUTATION_DRIFT).set(drifted as f64);
    counter!(REPUTATION_REPAIRS).increment(drifted);
}

pub fn promoted(tier: &'static str, n: usize) {
    counter!(PROMOTIONS, "tier" => tier).increment(n as u64);
}

pub fn offers_made(n: usize) {
    counter!(OFFERS_MADE).increment(n as u64);
}

pub fn offers_ended(outcome: &str, n: u64) {
    let outcome = match outcome {
        "accepted" => "accepted",
        "rejected" => "rejected",
        "expired" => "expired",
        _ => "withdrawn",
    };
    counter!(OFFERS_ENDED, "outcome" => outcome).increment(n);
}

pub fn long_polls_waiting(n: usize) {
    gauge!(LONG_POLLS_WAITING).set(n as f64);
}

pub fn long_poll_wakeups(cause: &'static str, n: usize) {
    if n > 0 {
        counter!(LONG_POLL_WAKEUPS, "cause" => cause).increment(n as u64);
    }
}
