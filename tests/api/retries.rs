//! Retry backoff: a lost attempt makes its task claimable again only after a backoff that
//! doubles per attempt, and later still for the worker that lost it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

const BACKOFF: Duration = Duration::from_secs(2);

async fn app_with_backoff(pool: PgPool) -> TestApp {
    let settings = owp_pool::config::Settings {
        retry_backoff: BACKOFF,
        retry_backoff_max: Duration::from_secs(60),
        ..test_settings()
    };
    spawn_app_with(pool, settings).await
}

/// Seconds from the database's now to the task's retry_at and withheld_until, and whom
/// it is withheld from.
async fn backoff_of(pool: &PgPool, task: &str) -> (f64, f64, Option<String>) {
    sqlx::query_as(
        "select extract(epoch from retry_at - now())::float8,
                extract(epoch from withheld_until - now())::float8, withheld_from
         from tasks where id = $1 and status = 'ready'",
    )
    .bind(task)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_failed_task_waits_out_the_backoff_and_goes_to_another_worker_first(pool: PgPool) {
    let app = app_with_backoff(pool.clone()).await;
    app.create_repo("acme/r", 3, true).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "flaky", "max_attempts": 5}))
        .await;
    let a = app.register("a", &[], 5, 2).await;
    let b = app.register("b", &[], 5, 2).await;
    assert_eq!(app.poll(&a).await.len(), 1);
    app.report(&a, &t, json!({"status": "failed", "message": "tests red"}))
        .await
        .expect(StatusCode::OK);

    // attempt 1 lost: nobody for BACKOFF, `a` for twice that
    let (retry_in, withheld_for, from) = backoff_of(&pool, &t).await;
    assert!(retry_in > 1.0 && retry_in <= 2.0, "{retry_in}");
    assert!(withheld_for > 3.0 && withheld_for <= 4.0, "{withheld_for}");
    assert_eq!(from.as_deref(), Some(a.id.as_str()));
    assert!(
        app.poll(&a).await.is_empty(),
        "the failing worker got it straight back"
    );
    assert!(
        app.poll(&b).await.is_empty(),
        "claimable before the backoff ended"
    );

    // after the backoff, before the failing worker's turn: `a` still gets nothing, `b` gets it
    tokio::time::sleep(Duration::from_secs_f64(retry_in + 0.1)).await;
    let (_, withheld_for, _) = backoff_of(&pool, &t).await;
    assert!(
        withheld_for > 0.5,
        "the test ran too slowly to check the window"
    );
    assert!(
        app.poll(&a).await.is_empty(),
        "the failing worker came first"
    );
    let leases = app.poll(&b).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["task_id"], t.as_str());
    assert_eq!(leases[0]["attempt"], 1);

    // attempt 2 lost: the backoff doubles
    app.report(&b, &t, json!({"status": "failed"}))
        .await
        .expect(StatusCode::OK);
    let (retry_in, withheld_for, from) = backoff_of(&pool, &t).await;
    assert!(retry_in > 3.0 && retry_in <= 4.0, "{retry_in}");
    assert!(withheld_for > 7.0 && withheld_for <= 8.0, "{withheld_for}");
    assert_eq!(from.as_deref(), Some(b.id.as_str()));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn with_no_other_worker_the_one_that_failed_gets_it_back(pool: PgPool) {
    let app = app_with_backoff(pool.clone()).await;
    app.create_repo("acme/r", 3, true).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let a = app.register("a", &[], 5, 2).await;
    assert_eq!(app.poll(&a).await.len(), 1);
    app.report(&a, &t, json!({"status": "failed"}))
        .await
        .expect(StatusCode::OK);
    let leases = eventually_some(
        "the lone worker gets its task back",
        Duration::from_secs(10),
        || async {
            let l = app.poll(&a).await;
            (!l.is_empty()).then_some(l)
        },
    )
    .await;
    assert_eq!(leases[0]["task_id"], t.as_str());
    // granted again: the backoff columns are cleared
    let row: (Option<String>,) = sqlx::query_as("select withheld_from from tasks where id = $1")
        .bind(&t)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(row.0, None);
}

#[sqlx::test]
async fn expired_leases_and_closed_prs_back_off_too_but_a_release_does_not(pool: PgPool) {
    let app = app_with_backoff(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let expiring = app
        .create_task(json!({"repo": "acme/r", "title": "e"}))
        .await;
    let closing = app
        .create_task(json!({"repo": "acme/r", "title": "c"}))
        .await;
    let releasing = app
        .create_task(json!({"repo": "acme/r", "title": "r"}))
        .await;
    let a = app.register("a", &[], 10, 3).await;
    assert_eq!(app.poll(&a).await.len(), 3);

    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(&expiring)
        .execute(&pool)
        .await
        .unwrap();
    owp_pool::scheduler::lease_expiry::run(
        &owp_pool::store::Db::from(pool.clone()),
        app.ctx.backoff(),
    )
    .await
    .unwrap();
    let (retry_in, _, from) = backoff_of(&pool, &expiring).await;
    assert!(retry_in > 1.0, "{retry_in}");
    assert_eq!(from.as_deref(), Some(a.id.as_str()));

    app.report(
        &a,
        &closing,
        json!({"status": "pr_opened", "pr_url": "https://github.com/acme/r/pull/1"}),
    )
    .await
    .expect(StatusCode::OK);
    app.admin(
        reqwest::Method::POST,
        &format!("/v1/tasks/{closing}/status"),
        Some(json!({"status": "closed"})),
    )
    .await
    .expect(StatusCode::OK);
    let (retry_in, _, from) = backoff_of(&pool, &closing).await;
    assert!(retry_in > 1.0, "{retry_in}");
    assert_eq!(
        from.as_deref(),
        Some(a.id.as_str()),
        "withheld from the PR opener"
    );

    app.report(&a, &releasing, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    let leases = app.poll(&a).await;
    assert_eq!(
        leases.len(),
        1,
        "a released task is ready at once, for anyone"
    );
    assert_eq!(leases[0]["task_id"], releasing.as_str());
    assert_invariants(&pool).await;
}
