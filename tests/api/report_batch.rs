//! Group commit of status reports (`report_batch`): concurrent guarded reports share
//! statements and commits, each still applied exactly once with its own audit event and its
//! own answer; a full queue refuses with 503 and writes nothing for the refused report; a
//! batch whose statement fails writes its reports one by one.

use owp_pool::config::Settings;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

fn batching(writers: usize, queue: usize) -> Settings {
    let mut s = test_settings();
    s.reports.report_batch = 64;
    s.reports.report_writers = writers;
    s.reports.report_queue = queue;
    s
}

/// A metric's value in this process's /metrics (the recorder is process-wide, so other
/// tests add to it too: compare deltas whose direction they cannot fake).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// `n` workers holding `each` tasks apiece: (worker, task, lease) per lease.
async fn holders(
    app: &TestApp,
    repo: &str,
    n: usize,
    each: usize,
) -> Vec<(Worker, String, String)> {
    app.create_repo(repo, 10_000, false).await;
    app.create_tasks(
        (0..n * each)
            .map(|i| json!({"repo": repo, "title": format!("batched {i}")}))
            .collect(),
    )
    .await;
    let mut held = Vec::new();
    for i in 0..n {
        let w = app
            .register(&format!("batcher {i}"), &[], 100, each as i64)
            .await;
        let leases = app.poll_query(&w, &format!("?max={each}")).await;
        assert_eq!(leases.len(), each);
        for l in leases {
            let task = l["task_id"].as_str().unwrap().to_string();
            let lease = l["lease_id"].as_str().unwrap().to_string();
            held.push((w.clone(), task, lease));
        }
    }
    held
}

/// Sends `status` for every held task at once; the answers, in the same order.
async fn report_all(
    app: &TestApp,
    held: &[(Worker, String, String)],
    status: &str,
) -> Vec<(StatusCode, Option<String>, Value)> {
    let sends = held.iter().map(|(w, task, lease)| {
        let req = app
            .http
            .post(format!("{}/v1/tasks/{task}/status", app.base))
            .bearer_auth(&w.token)
            .json(&json!({"status": status, "lease_id": lease, "message": format!("{status} {task}")}));
        async move {
            let r = req.send().await.unwrap();
            let code = r.status();
            let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            (code, retry, r.json::<Value>().await.unwrap())
        }
    });
    futures::future::join_all(sends).await
}

async fn events_to(pool: &PgPool, task: &str, to: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "select coalesce(data, 'null'::jsonb) from audit_events
         where task_id = $1 and kind = 'task_status_changed' and to_status = $2",
    )
    .bind(task)
    .bind(to)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// 120 reports at once through one writer: they share statements (the batch histogram's
/// rows outnumber its statements), and each task moves once per report, with its own
/// audit event carrying its own message, its own answer, and its lease ended on completion.
#[sqlx::test]
async fn concurrent_reports_share_statements_and_each_applies_once(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), batching(1, 10_000)).await;
    let held = holders(&app, "acme/batched", 60, 2).await;
    let (rows0, batches0) = (
        metric(&app, "owp_report_batch_rows_sum").await,
        metric(&app, "owp_report_batch_rows_count").await,
    );
    for status in ["in_progress", "completed"] {
        let answers = report_all(&app, &held, status).await;
        for ((_, task, _), (code, _, body)) in held.iter().zip(&answers) {
            assert_eq!(*code, StatusCode::OK, "{task}: {body}");
            assert_eq!(body["task_id"], task.as_str());
            assert_eq!(body["status"], status);
            assert_eq!(
                body["lease_expires_at"].is_null(),
                status == "completed",
                "{body}"
            );
        }
    }
    let (rows, batches) = (
        metric(&app, "owp_report_batch_rows_sum").await - rows0,
        metric(&app, "owp_report_batch_rows_count").await - batches0,
    );
    assert!(rows >= 240.0, "every report went through the queue: {rows}");
    assert!(
        batches < rows,
        "reports shared statements: {batches} statements for {rows} reports"
    );
    for (_, task, lease) in &held {
        assert_eq!(app.task_row(task).await.0, "completed");
        for to in ["in_progress", "completed"] {
            let events = events_to(&pool, task, to).await;
            assert_eq!(
                events,
                [json!({"message": format!("{to} {task}")})],
                "{task}"
            );
        }
        let ended: Option<String> =
            sqlx::query_scalar("select end_reason from leases where id = $1")
                .bind(lease)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(ended.as_deref(), Some("completed"));
    }
    assert_invariants(&pool).await;
}

/// A queue of one report: most of 100 simultaneous reports are refused with 503,
/// `unavailable` and Retry-After, and a refused report writes nothing; sent again, each
/// applies.
#[sqlx::test]
async fn a_full_queue_refuses_with_503_and_loses_nothing(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), batching(1, 1)).await;
    let held = holders(&app, "acme/full", 50, 2).await;
    let refused0 = metric(&app, "owp_reports_refused_total").await;
    let answers = report_all(&app, &held, "in_progress").await;
    let mut refused = Vec::new();
    for ((w, task, lease), (code, retry, body)) in held.iter().zip(&answers) {
        let events = events_to(&pool, task, "in_progress").await;
        match *code {
            StatusCode::OK => assert_eq!(events.len(), 1, "{task}"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body["code"], "unavailable", "{body}");
                assert_eq!(retry.as_deref(), Some("1"));
                assert!(
                    events.is_empty(),
                    "{task}: a refused report wrote {events:?}"
                );
                assert_eq!(app.task_row(task).await.0, "leased");
                refused.push((w.clone(), task.clone(), lease.clone()));
            }
            other => panic!("{task}: {other} {body}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "100 reports at once overflow a queue of one"
    );
    assert!(metric(&app, "owp_reports_refused_total").await - refused0 >= refused.len() as f64);
    for (w, task, lease) in &refused {
        let again = app
            .report(w, task, json!({"status": "in_progress", "lease_id": lease}))
            .await;
        again.expect(StatusCode::OK);
        assert_eq!(events_to(&pool, task, "in_progress").await.len(), 1);
    }
    assert_invariants(&pool).await;
}

/// A batch whose statement fails (here a trigger refuses any statement that moves two tasks
/// to `in_progress` at once) writes its reports one by one: every report still applies once
/// and is answered 200, and the fallback is counted.
#[sqlx::test]
async fn a_failing_batch_writes_its_reports_one_by_one(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), batching(1, 10_000)).await;
    let held = holders(&app, "acme/fallback", 40, 2).await;
    sqlx::raw_sql(
        "create function refuse_batches() returns trigger language plpgsql as $$
         begin
           if (select count(*) from moved where status = 'in_progress') > 1 then
             raise exception 'test: no batches';
           end if;
           return null;
         end $$;
         create trigger refuse_batches after update on tasks referencing new table as moved
           for each statement execute function refuse_batches();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let fallbacks0 = metric(&app, "owp_report_batch_fallbacks_total").await;
    let answers = report_all(&app, &held, "in_progress").await;
    for ((_, task, _), (code, _, body)) in held.iter().zip(&answers) {
        assert_eq!(*code, StatusCode::OK, "{task}: {body}");
        assert_eq!(
            events_to(&pool, task, "in_progress").await.len(),
            1,
            "{task}"
        );
        assert_eq!(app.task_row(task).await.0, "in_progress");
    }
    assert!(
        metric(&app, "owp_report_batch_fallbacks_total").await > fallbacks0,
        "80 reports through one writer formed a batch, which failed and fell back"
    );
    assert_invariants(&pool).await;
}

/// Reports the table refuses ride in the same batches as those it allows: 30 tasks
/// `blocked`, 30 `in_progress`, then `completed` for all 60 at once through one writer.
/// `blocked -> completed` is not a transition, so those 30 answer 409 invalid_transition and
/// stay blocked with no event; the others complete, each once.
#[sqlx::test]
async fn a_batch_applies_only_what_the_transition_table_allows(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), batching(1, 10_000)).await;
    let held = holders(&app, "acme/table", 30, 2).await;
    let (blocked, working): (Vec<_>, Vec<_>) = held
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let blocked: Vec<_> = blocked.into_iter().map(|(_, h)| h).collect();
    let working: Vec<_> = working.into_iter().map(|(_, h)| h).collect();
    for (code, _, body) in report_all(&app, &blocked, "blocked").await {
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    for (code, _, body) in report_all(&app, &working, "in_progress").await {
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    let answers = report_all(&app, &held, "completed").await;
    for (i, ((_, task, _), (code, _, body))) in held.iter().zip(&answers).enumerate() {
        let completions = events_to(&pool, task, "completed").await.len();
        if i % 2 == 0 {
            assert_eq!(*code, StatusCode::CONFLICT, "{task}: {body}");
            assert_eq!(
                body["details"], "invalid_transition: blocked -> completed",
                "{body}"
            );
            assert_eq!(app.task_row(task).await.0, "blocked");
            assert_eq!(completions, 0, "{task}");
        } else {
            assert_eq!(*code, StatusCode::OK, "{task}: {body}");
            assert_eq!(app.task_row(task).await.0, "completed");
            assert_eq!(completions, 1, "{task}");
        }
    }
    assert_invariants(&pool).await;
}
