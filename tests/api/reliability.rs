//! Defects found by review and reproduction: each test failed before its fix.

use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

/// Waits until a session of the test's database (a request of the app) waits on a lock.
async fn until_a_request_waits_on_a_lock(pool: &PgPool) {
    eventually(
        "a request waits on a row lock",
        Duration::from_secs(10),
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
            )
            .fetch_one(pool)
            .await
            .unwrap();
            waiting > 0
        },
    )
    .await;
}

/// A poll that waited on its worker's row lock grants a lease whose transaction started
/// before a lease that was granted and ended meanwhile. Reports must end the lease they
/// belong to, and the task must stay claimable for everyone.
#[sqlx::test]
async fn a_claim_that_waited_for_its_worker_does_not_poison_the_task(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 3, false).await;
    let x = app.create_task(json!({"repo": "r", "title": "X"})).await;
    let w1 = app.register("w1", &[], 5, 2).await;
    let w2 = app.register("w2", &[], 5, 2).await;

    // hold W2's row: its poll begins its transaction, then waits for the row
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("select 1 from workers where id = $1 for update")
        .bind(&w2.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let (late, ()) = tokio::join!(app.poll(&w2), async {
        until_a_request_waits_on_a_lock(&pool).await;
        let early = app.poll(&w1).await;
        assert_eq!(early[0]["task_id"], x.as_str());
        app.report(&w1, &x, json!({"status": "released"}))
            .await
            .expect(reqwest::StatusCode::OK);
        blocker.commit().await.unwrap();
    });
    assert_eq!(
        late[0]["task_id"],
        x.as_str(),
        "W2 claims X after W1 let it go"
    );
    app.report(&w2, &x, json!({"status": "released"}))
        .await
        .expect(reqwest::StatusCode::OK);
    assert_invariants(&pool).await;

    // the task is claimable again, for either worker, and its life goes on
    let again = app.poll(&w1).await;
    assert_eq!(again[0]["task_id"], x.as_str());
    app.report(&w1, &x, json!({"status": "completed"}))
        .await
        .expect(reqwest::StatusCode::OK);
    assert_eq!(app.task_row(&x).await.0, "completed");
    assert_invariants(&pool).await;
}

/// A task row that a bug left inconsistent (ready, yet with a live lease row) must not
/// fail every poll: the claim passes over it and grants the next task.
#[sqlx::test]
async fn one_inconsistent_task_never_fails_every_poll(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 5, false).await;
    let bad = app
        .create_task(json!({"repo": "r", "title": "bad", "priority": 99}))
        .await;
    let good = app.create_task(json!({"repo": "r", "title": "good"})).await;
    let w = app.register("w", &[], 5, 2).await;
    let other = app.register("other", &[], 5, 2).await;
    sqlx::query(
        "insert into leases (id, task_id, worker_id, attempt) values ('l_stray', $1, $2, 0)",
    )
    .bind(&bad)
    .bind(&other.id)
    .execute(&pool)
    .await
    .unwrap();
    let leases = app.poll(&w).await;
    let ids: Vec<&str> = leases
        .iter()
        .map(|l| l["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [good.as_str()], "the inconsistent task is passed over");
    assert_eq!(app.task_row(&bad).await.0, "ready");
}
