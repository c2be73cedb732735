//! Retention: old history goes, recent and live rows stay, the checker still passes; and
//! repeated reports do not pile up artifacts.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

async fn count(pool: &PgPool, sql: &str, task: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(task)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Moves everything recorded about `task` (its events, leases, artifacts) `days` back.
async fn age(pool: &PgPool, task: &str, days: i32) {
    for sql in [
        "update audit_events set at = at - make_interval(days => $2) where task_id = $1",
        "update leases set granted_at = granted_at - make_interval(days => $2),
                ended_at = ended_at - make_interval(days => $2) where task_id = $1",
        "update artifacts set created_at = created_at - make_interval(days => $2) where task_id = $1",
        "update tasks set created_at = created_at - make_interval(days => $2),
                updated_at = updated_at - make_interval(days => $2) where id = $1",
    ] {
        sqlx::query(sql)
            .bind(task)
            .bind(days)
            .execute(pool)
            .await
            .unwrap();
    }
}

#[sqlx::test]
async fn retention_removes_old_history_and_keeps_recent_and_live_rows(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let tasks = app
        .create_tasks(
            (0..3)
                .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
                .collect(),
        )
        .await;
    let (old_done, old_open, new_done) = (&tasks[0], &tasks[1], &tasks[2]);
    let w = app.register("w", &[], 10, 3).await;
    assert_eq!(app.poll(&w).await.len(), 3);
    for t in [old_done, new_done] {
        app.report(
            &w,
            t,
            json!({"status": "completed", "artifact": {"commit_sha": "abc123"}}),
        )
        .await
        .expect(StatusCode::OK);
    }
    app.report(
        &w,
        old_open,
        json!({"status": "pr_opened", "pr_url": "https://github.com/acme/r/pull/1"}),
    )
    .await
    .expect(StatusCode::OK);
    age(&pool, old_done, 100).await;
    age(&pool, old_open, 100).await;

    let pruned =
        owp_pool::scheduler::retention::run(&owp_pool::store::Db::from(pool.clone()), 90 * DAY)
            .await
            .unwrap();
    assert_eq!(pruned.leases, 1, "{pruned:?}");
    assert_eq!(pruned.artifacts, 1, "{pruned:?}");
    assert!(pruned.audit_events >= 6, "{pruned:?}");

    let leases = "select count(*) from leases where task_id = $1";
    let artifacts = "select count(*) from artifacts where task_id = $1";
    let events = "select count(*) from audit_events where task_id = $1";
    // the old finished task lost its history, but the task itself stays
    assert_eq!(count(&pool, leases, old_done).await, 0);
    assert_eq!(count(&pool, artifacts, old_done).await, 0);
    assert_eq!(count(&pool, events, old_done).await, 0);
    assert_eq!(app.task_row(old_done).await.0, "completed");
    // the old PR still awaits review: its lease and PR link stay (only events are by age)
    assert_eq!(count(&pool, leases, old_open).await, 1);
    assert_eq!(count(&pool, artifacts, old_open).await, 1);
    assert_eq!(count(&pool, events, old_open).await, 0);
    // recent history is untouched
    assert_eq!(count(&pool, leases, new_done).await, 1);
    assert_eq!(count(&pool, artifacts, new_done).await, 1);
    assert_eq!(count(&pool, events, new_done).await, 3);
    // the checker knows history before the horizon may be gone
    assert_invariants(&pool).await;

    // the PR can still be merged after its history was pruned
    app.report(&w, old_open, json!({"status": "merged"}))
        .await
        .expect(StatusCode::OK);
    // now terminal, its old lease and artifact go on the next run; then nothing is left
    let again =
        owp_pool::scheduler::retention::run(&owp_pool::store::Db::from(pool.clone()), 90 * DAY)
            .await
            .unwrap();
    assert_eq!((again.leases, again.artifacts), (1, 1), "{again:?}");
    assert_eq!(count(&pool, leases, old_open).await, 0);
    let last =
        owp_pool::scheduler::retention::run(&owp_pool::store::Db::from(pool.clone()), 90 * DAY)
            .await
            .unwrap();
    assert_eq!(last.total(), 0, "{last:?}");
    assert_eq!(count(&pool, leases, new_done).await, 1);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn the_leader_prunes_on_its_interval_and_zero_keeps_everything(pool: PgPool) {
    let keep = owp_pool::config::Settings {
        retention: Duration::ZERO,
        ..test_settings()
    };
    let app = spawn_app_with(pool.clone(), keep).await;
    app.create_repo("acme/r", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    age(&pool, &t, 400).await;
    let mut schedule = owp_pool::scheduler::Schedule::now();
    owp_pool::scheduler::sweep_due(&app.ctx, &mut schedule).await;
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_events where task_id = $1",
            &t
        )
        .await,
        1
    );

    let prune = owp_pool::config::Settings {
        retention: 90 * DAY,
        ..test_settings()
    };
    let app = spawn_app_with(pool.clone(), prune).await;
    let mut schedule = owp_pool::scheduler::Schedule::now();
    let report = owp_pool::scheduler::sweep_due(&app.ctx, &mut schedule)
        .await
        .expect("every duty is due at once");
    assert_eq!(report.pruned.audit_events, 1);
    assert_eq!(
        count(
            &pool,
            "select count(*) from audit_events where task_id = $1",
            &t
        )
        .await,
        0
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_repeated_report_records_its_artifact_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 10, 3).await;
    app.poll(&w).await;
    let progress =
        json!({"status": "in_progress", "artifact": {"commit_sha": "abc", "extra": {"k": 1}}});
    for _ in 0..5 {
        app.report(&w, &t, progress.clone())
            .await
            .expect(StatusCode::OK);
    }
    app.report(
        &w,
        &t,
        json!({"status": "in_progress", "artifact": {"commit_sha": "def"}}),
    )
    .await
    .expect(StatusCode::OK);
    let shas: Vec<String> =
        sqlx::query_scalar("select commit_sha from artifacts where task_id = $1 order by id")
            .bind(&t)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(shas, ["abc", "def"], "one row per distinct artifact");
}
