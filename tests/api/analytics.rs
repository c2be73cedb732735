//! Repository analytics on a scripted history with known answers.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn analytics(app: &TestApp, query: &str) -> Value {
    app.admin(
        Method::GET,
        &format!("/v1/analytics/repositories/acme/r{query}"),
        None,
    )
    .await
    .expect(StatusCode::OK)
}

/// Sets a task's creation time and its only lease's times, in hours before now.
async fn times(pool: &PgPool, task: &str, created: f64, lease: (f64, f64), decided: Option<f64>) {
    sqlx::query(
        "update tasks set created_at = now() - make_interval(secs => $2 * 3600) where id = $1",
    )
    .bind(task)
    .bind(created)
    .execute(pool)
    .await
    .unwrap();
    let n = sqlx::query(
        "update leases set granted_at = now() - make_interval(secs => $2 * 3600),
                           ended_at = now() - make_interval(secs => $3 * 3600),
                           pr_decided_at = now() - make_interval(secs => $4 * 3600)
         where task_id = $1",
    )
    .bind(task)
    .bind(lease.0)
    .bind(lease.1)
    .bind(decided)
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n, 1, "{task} has one lease");
}

#[sqlx::test]
async fn figures_of_a_scripted_history(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    let old = app
        .create_task(json!({"repo": "acme/r", "title": "old"}))
        .await;
    app.admin(Method::POST, &format!("/v1/tasks/{old}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    let ids = app
        .create_tasks(
            [
                ("merged", 50, 3),
                ("completed", 49, 3),
                ("expired", 48, 3),
                ("failed", 47, 1),
                ("closed", 46, 3),
            ]
            .iter()
            .map(
                |(t, p, m)| json!({"repo": "acme/r", "title": t, "priority": p, "max_attempts": m}),
            )
            .collect(),
        )
        .await;
    let [merged, completed, expired, failed, closed] = <[String; 5]>::try_from(ids).unwrap();
    let w = app.register("w", &[], 10, 1).await;
    let take = |want: String| {
        let app = &app;
        let w = &w;
        async move {
            let leases = app.poll(w).await;
            assert_eq!(leases.len(), 1);
            assert_eq!(leases[0]["task_id"], want.as_str());
        }
    };
    let pr = json!({"status": "pr_opened", "pr_url": "https://github.com/acme/r/pull/1"});
    take(merged.clone()).await;
    app.report(&w, &merged, pr.clone())
        .await
        .expect(StatusCode::OK);
    app.admin(
        Method::POST,
        &format!("/v1/tasks/{merged}/status"),
        Some(json!({"status": "merged"})),
    )
    .await
    .expect(StatusCode::OK);
    take(completed.clone()).await;
    app.report(&w, &completed, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    take(expired.clone()).await;
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(&expired)
        .execute(&pool)
        .await
        .unwrap();
    let mut schedule = owp_pool::scheduler::Schedule::now();
    owp_pool::scheduler::sweep_due(&app.ctx, &mut schedule).await;
    app.admin(Method::POST, &format!("/v1/tasks/{expired}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    take(failed.clone()).await;
    app.report(&w, &failed, json!({"status": "failed"}))
        .await
        .expect(StatusCode::OK);
    take(closed.clone()).await;
    // another PR: one pull request earns credit for one task
    let second_pr = json!({"status": "pr_opened", "pr_url": "https://github.com/acme/r/pull/2"});
    app.report(&w, &closed, second_pr)
        .await
        .expect(StatusCode::OK);
    app.report(&w, &closed, json!({"status": "closed"}))
        .await
        .expect(StatusCode::OK);
    app.admin(Method::POST, &format!("/v1/tasks/{closed}/cancel"), None)
        .await
        .expect(StatusCode::OK);

    // every task created 10 h ago; work 1, 2, 3 h; queue waits 1-5 h; reviews 5 h and 1 h
    times(&pool, &merged, 10.0, (9.0, 8.0), Some(3.0)).await;
    times(&pool, &completed, 10.0, (8.0, 6.0), None).await;
    times(&pool, &expired, 10.0, (6.0, 5.0), None).await;
    times(&pool, &failed, 10.0, (5.0, 5.0), None).await;
    times(&pool, &closed, 10.0, (7.0, 4.0), Some(3.0)).await;
    sqlx::query("update tasks set created_at = now() - interval '40 days' where id = $1")
        .bind(&old)
        .execute(&pool)
        .await
        .unwrap();

    let a = analytics(&app, "").await;
    assert_eq!(a["repo"], "acme/r");
    assert_eq!(a["period"], "30d", "the default period");
    let m = &a["metrics"];
    assert_eq!(m["tasks_created"], 5, "{a}");
    assert_eq!(m["tasks_completed"], 1);
    assert_eq!(m["tasks_merged"], 1);
    assert_eq!(m["tasks_failed"], 1);
    let secs = |v: &Value| v.as_f64().unwrap();
    assert!(
        (secs(&m["avg_completion_time_s"]) - 7200.0).abs() < 1.0,
        "{m}"
    );
    assert!((secs(&m["p50_completion_time_s"]) - 7200.0).abs() < 1.0);
    // percentile_cont: 7200 + 0.8 x 3600
    assert!((secs(&m["p90_completion_time_s"]) - 10_080.0).abs() < 1.0);
    assert_eq!(m["pr_merge_rate"], 0.5);
    // five leases ended in the window, one by expiry
    assert_eq!(m["lease_expiry_rate"], 0.2);
    // the median of 5 h and 1 h
    assert!((secs(&m["review_wait_p50_s"]) - 3.0 * 3600.0).abs() < 1.0);
    assert!((secs(&m["queue_wait_p50_s"]) - 3.0 * 3600.0).abs() < 1.0);
    // 7 h held by one worker over 30 days
    let util = 7.0 * 3600.0 / (30.0 * 86_400.0);
    assert!((secs(&m["worker_utilization"]) - util).abs() < 1e-6, "{m}");
    // reviews (3 h) and first leases (3 h) both wait longer than the work (2 h)
    assert_eq!(m["bottlenecks"], json!(["review", "capacity"]));

    let q = analytics(&app, "?period=90d").await;
    assert_eq!(q["period"], "90d");
    assert_eq!(
        q["metrics"]["tasks_created"], 6,
        "the 40-day-old task counts in 90d"
    );
    let encoded = app
        .admin(
            Method::GET,
            "/v1/analytics/repositories/acme%2Fr?period=90d",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        encoded, q,
        "one percent-encoded segment names the same repo"
    );
    let week = analytics(&app, "?period=7d").await;
    assert_eq!(week["metrics"]["tasks_created"], 5);

    // with every review slot taken and tasks ready, tasks queue for review, not for workers
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/r", "max_open_prs": 0})),
    )
    .await
    .expect(StatusCode::OK);
    app.create_task(json!({"repo": "acme/r", "title": "waits"}))
        .await;
    let full = analytics(&app, "").await;
    assert_eq!(full["metrics"]["bottlenecks"], json!(["review"]));

    for (path, status, code) in [
        (
            "/v1/analytics/repositories/acme/r?period=1y",
            StatusCode::BAD_REQUEST,
            "validation_error",
        ),
        (
            "/v1/analytics/repositories/acme/nope",
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        app.admin(Method::GET, path, None)
            .await
            .expect_error(status, code);
    }
    app.call(Method::GET, "/v1/analytics/repositories/acme/r", &[], None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
}

#[sqlx::test]
async fn an_idle_repo_has_zeros_and_no_verdict(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 3, true).await;
    let a = analytics(&app, "?period=7d").await;
    let m = &a["metrics"];
    assert_eq!(m["tasks_created"], 0);
    assert_eq!(m["avg_completion_time_s"], Value::Null);
    assert_eq!(m["review_wait_p50_s"], Value::Null);
    assert_eq!(m["pr_merge_rate"], 0.0);
    assert_eq!(m["worker_utilization"], 0.0);
    assert_eq!(m["bottlenecks"], json!([]));
}
