//! The one-statement status report (store::tasks::guarded) against the locking path, on
//! generated histories: the same reports, in the same order, sent to two tasks in the same
//! state, one through the server (which tries the guarded statement first) and one straight
//! to the locking path (`store::tasks::update_status`). Every answer, and in the end the
//! task rows, their leases and their audit trails, must be the same.

use owp_pool::domain::ids::TaskId;
use owp_pool::domain::status::Report;
use owp_pool::domain::transition::Actor;
use owp_pool::store::tasks::{self, Artifact, StatusResult, StatusUpdate};
use owp_pool::store::Db;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

const REPORTS: [&str; 8] = [
    "in_progress",
    "blocked",
    "completed",
    "failed",
    "released",
    "pr_opened",
    "merged",
    "closed",
];

#[derive(Clone, Debug)]
enum Step {
    /// A report by the holder (or, `by_other`, by another worker), naming the task's
    /// current lease, a stale one, or none.
    Report {
        status: &'static str,
        by_other: bool,
        lease: Lease,
        message: bool,
    },
    /// Both leases run out.
    Expire,
}

#[derive(Clone, Copy, Debug)]
enum Lease {
    Current,
    Stale,
    Omitted,
}

fn step() -> impl Strategy<Value = Step> {
    let report = (
        prop::sample::select(REPORTS.to_vec()),
        prop::bool::weighted(0.15),
        prop_oneof![
            6 => Just(Lease::Current),
            1 => Just(Lease::Stale),
            1 => Just(Lease::Omitted)
        ],
        any::<bool>(),
    )
        .prop_map(|(status, by_other, lease, message)| Step::Report {
            status,
            by_other,
            lease,
            message,
        });
    prop_oneof![10 => report, 1 => Just(Step::Expire)]
}

/// One of the two tasks: its id and the lease it was granted.
struct World {
    task: String,
    lease: String,
}

/// Through the report queue: the batch statement (guarded_batch.sql), one report at a time.
#[sqlx::test]
async fn the_guarded_report_answers_and_writes_as_the_locking_path_does(pool: PgPool) {
    against_the_locking_path(pool, test_settings()).await;
}

/// With `OWP_REPORT_BATCH=1`: the single statement (guarded.sql), which is also what a
/// failed batch falls back to.
#[sqlx::test]
async fn the_single_guarded_statement_answers_and_writes_as_the_locking_path_does(pool: PgPool) {
    let mut settings = test_settings();
    settings.reports.report_batch = 1;
    against_the_locking_path(pool, settings).await;
}

async fn against_the_locking_path(pool: PgPool, settings: owp_pool::config::Settings) {
    let app = spawn_app_with(pool.clone(), settings).await;
    app.create_repo("acme/guarded", 10_000, false).await;
    let other = app.register("other", &[], 10, 2).await;
    let mut runner = TestRunner::deterministic();
    let histories = prop::collection::vec(step(), 1..9);
    for case in 0..48 {
        let history = histories.new_tree(&mut runner).unwrap().current();
        // a holder per case, so the leases earlier cases left live take no capacity
        let holder = app.register(&format!("holder {case}"), &[], 10, 2).await;
        let (fast, slow) = two_tasks(&app, &holder, case).await;
        for (i, s) in history.iter().enumerate() {
            let (a, b) = match s {
                Step::Expire => {
                    expire(&pool, &[&fast.task, &slow.task]).await;
                    continue;
                }
                Step::Report {
                    status,
                    by_other,
                    lease,
                    message,
                } => {
                    let by = if *by_other { &other } else { &holder };
                    let lease_of = |w: &World| match lease {
                        Lease::Current => Some(w.lease.clone()),
                        Lease::Stale => Some("l_stale".to_string()),
                        Lease::Omitted => None,
                    };
                    let message = message.then_some("progress");
                    let a = through_server(&app, by, &fast.task, status, lease_of(&fast), message);
                    let b = locking_path(&app, by, &slow.task, status, lease_of(&slow), message);
                    (a.await, b.await)
                }
            };
            assert_eq!(a, b, "case {case}, step {i} of {history:?}");
        }
        assert_eq!(
            written(&pool, &fast).await,
            written(&pool, &slow).await,
            "case {case}: {history:?}"
        );
    }
    assert_invariants(&pool).await;
}

/// Two new tasks leased to `holder` by one poll.
async fn two_tasks(app: &TestApp, holder: &Worker, case: i32) -> (World, World) {
    let ids = app
        .create_tasks(
            (0..2)
                .map(|i| json!({"repo": "acme/guarded", "title": format!("case {case} {i}"), "priority": 1_000 + case}))
                .collect(),
        )
        .await;
    let leases = app.poll_query(holder, "?max=2").await;
    let world = |id: &String| {
        let lease = leases
            .iter()
            .find(|l| l["task_id"] == id.as_str())
            .expect("both new tasks are leased");
        World {
            task: id.clone(),
            lease: lease["lease_id"].as_str().unwrap().to_string(),
        }
    };
    (world(&ids[0]), world(&ids[1]))
}

async fn expire(pool: &PgPool, tasks: &[&String]) {
    sqlx::query(
        "update tasks set lease_expires_at = now() - interval '1 second'
         where id = any($1) and lease_expires_at is not null",
    )
    .bind(tasks.iter().map(|t| t.as_str()).collect::<Vec<_>>())
    .execute(pool)
    .await
    .unwrap();
}

fn body(status: &str, lease: Option<String>, message: Option<&str>) -> Value {
    let mut b = json!({"status": status, "lease_id": lease, "message": message});
    if status == "pr_opened" {
        b["pr_url"] = json!(pr_link("acme/guarded"));
    }
    b
}

/// The server's answer: `ok:<status>`, `409:<details>`, or the HTTP status.
async fn through_server(
    app: &TestApp,
    by: &Worker,
    task: &str,
    status: &str,
    lease: Option<String>,
    message: Option<&str>,
) -> String {
    let a = app.report(by, task, body(status, lease, message)).await;
    match a.status {
        StatusCode::OK => format!("ok:{}", a.body["status"].as_str().unwrap()),
        StatusCode::CONFLICT => format!("409:{}", a.body["details"].as_str().unwrap()),
        s => s.as_u16().to_string(),
    }
}

/// The locking path's answer, in the server's words.
async fn locking_path(
    app: &TestApp,
    by: &Worker,
    task: &str,
    status: &str,
    lease: Option<String>,
    message: Option<&str>,
) -> String {
    let settings = &app.ctx.settings;
    let report: Report = status.parse().unwrap();
    let pr_url = (status == "pr_opened").then(|| pr_link("acme/guarded"));
    let task_id = TaskId(task.to_string());
    let actor = format!("worker:{}", by.id);
    let host = settings.github.web_host();
    let u = StatusUpdate {
        task_id: &task_id,
        actor: Actor::Worker(&by.id),
        report,
        lease_id: lease.as_deref(),
        message,
        artifact: Artifact {
            pr_url,
            ..Artifact::default()
        },
        lease_ttl: settings.lease_ttl,
        backoff: app.ctx.backoff(),
        audit_actor: &actor,
        quality: None,
        on_time_per_point: settings.on_time_per_point,
        github_host: &host,
        tier_lease_ttl: &settings.tier_lease_ttl,
        max_artifacts_per_lease: settings.max_artifacts_per_lease,
        pr_evidence: None,
    };
    let db = Db::from(app.pool.clone());
    match tasks::update_status(&db, &u).await.unwrap() {
        StatusResult::Updated { status, .. } => format!("ok:{}", status.as_str()),
        StatusResult::LeaseLost => "409:lease_lost".into(),
        StatusResult::Invalid { from } => format!("409:invalid_transition: {from} -> {report}"),
        StatusResult::Forbidden => "403".into(),
        StatusResult::AwaitingApproval => "403:awaiting_approval".into(),
        StatusResult::NotFound => "404".into(),
        StatusResult::LeaseIdRequired => "400".into(),
        StatusResult::PrUrlTaken { .. } => "409:pr_url_taken".into(),
        StatusResult::ForeignPrUrl { .. } | StatusResult::TooManyArtifacts { .. } => "400".into(),
    }
}

/// What a history left in the task row, its lease and its audit trail, with the ids and
/// times that differ between the two tasks left out.
async fn written(pool: &PgPool, w: &World) -> Value {
    let task: Value = sqlx::query_scalar(
        "select jsonb_build_object(
             'status', status, 'attempt', attempt, 'worker', worker_id,
             'lease', lease_id is not null, 'expires', lease_expires_at is not null,
             'area', holds_area_lock, 'pr', pr_url is not null, 'pr_opened', pr_opened_at is not null,
             'retry', retry_at is not null, 'withheld', withheld_from)
         from tasks where id = $1",
    )
    .bind(&w.task)
    .fetch_one(pool)
    .await
    .unwrap();
    let lease: Value = sqlx::query_scalar(
        "select jsonb_build_object(
             'last_report', last_report, 'ended', ended_at is not null, 'end_reason', end_reason,
             'on_time', on_time, 'credited', credited, 'quality', quality,
             'pr_decided', pr_decided_at is not null)
         from leases where id = $1",
    )
    .bind(&w.lease)
    .fetch_one(pool)
    .await
    .unwrap();
    let audit: Value = sqlx::query_scalar(
        "select coalesce(jsonb_agg(jsonb_build_object(
             'kind', kind, 'worker', worker_id, 'from', from_status, 'to', to_status,
             'reason', reason, 'data', data, 'actor', actor, 'lease', lease_id = $2)
             order by id), '[]')
         from audit_events where task_id = $1 and kind <> 'task_created'",
    )
    .bind(&w.task)
    .bind(&w.lease)
    .fetch_one(pool)
    .await
    .unwrap();
    let artifacts: i64 = sqlx::query_scalar("select count(*) from artifacts where task_id = $1")
        .bind(&w.task)
        .fetch_one(pool)
        .await
        .unwrap();
    json!({"task": task, "lease": lease, "audit": audit, "artifacts": artifacts})
}

/// Many reports of one lease at once (four `completed`, an `in_progress`), an admin's
/// requeue racing them on every other task: the guarded statement's row lock makes each
/// task take exactly one of them first. A lease completes at most once, never after its
/// task was requeued, and every answer agrees with what was written. (Without `for update`
/// in guarded.sql, concurrent completions each write their event: this test fails.)
#[sqlx::test]
async fn racing_reports_and_requeues_apply_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/race", 10_000, false).await;
    let w = app.register("racer", &[], 1000, 100).await;
    let tasks = app
        .create_tasks(
            (0..40)
                .map(|i| json!({"repo": "acme/race", "title": format!("race {i}")}))
                .collect(),
        )
        .await;
    let leases = app.poll_query(&w, "?max=40").await;
    assert_eq!(leases.len(), 40);
    let mut racers = Vec::new();
    for (i, l) in leases.iter().enumerate() {
        let task = l["task_id"].as_str().unwrap().to_string();
        let lease = l["lease_id"].as_str().unwrap().to_string();
        for status in [
            "completed",
            "completed",
            "in_progress",
            "completed",
            "completed",
        ] {
            let (app, w, task, lease) = (&app, &w, task.clone(), lease.clone());
            racers.push(tokio::spawn({
                let (base, http, token) = (app.base.clone(), app.http.clone(), w.token.clone());
                async move {
                    let r = http
                        .post(format!("{base}/v1/tasks/{task}/status"))
                        .bearer_auth(token)
                        .json(&json!({"status": status, "lease_id": lease}))
                        .send()
                        .await
                        .unwrap();
                    (task, status, r.status())
                }
            }));
        }
        if i % 2 == 0 {
            let (base, http) = (app.base.clone(), app.http.clone());
            racers.push(tokio::spawn(async move {
                let r = http
                    .post(format!("{base}/v1/tasks/{task}/requeue"))
                    .header("x-admin-token", ADMIN)
                    .send()
                    .await
                    .unwrap();
                (task, "requeue", r.status())
            }));
        }
    }
    let answers: Vec<_> = futures::future::join_all(racers)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for t in &tasks {
        let events: Vec<(String, Option<String>)> = sqlx::query_as(
            "select kind, to_status from audit_events
             where task_id = $1 and kind in ('task_status_changed', 'task_requeued') order by id",
        )
        .bind(t)
        .fetch_all(&pool)
        .await
        .unwrap();
        let completions = events
            .iter()
            .filter(|(k, to)| k == "task_status_changed" && to.as_deref() == Some("completed"))
            .count();
        let requeued_first = events.first().is_some_and(|(k, _)| k == "task_requeued");
        let (status, _, _) = app.task_row(t).await;
        let ok_completed = answers
            .iter()
            .any(|(task, s, code)| task == t && *s == "completed" && *code == StatusCode::OK);
        assert!(completions <= 1, "{t}: {events:?}");
        assert_eq!(completions == 1, status == "completed", "{t}: {events:?}");
        assert_eq!(
            ok_completed,
            status == "completed",
            "{t}: {events:?} {answers:?}"
        );
        if requeued_first {
            assert_eq!(
                completions, 0,
                "{t}: completed after its requeue: {events:?}"
            );
        }
    }
    assert_invariants(&pool).await;
}
