//! Planned work changed after the fact (`PATCH /v1/tasks/{id}`): `not_before`,
//! `depends_on` and a reservation move, take effect for the next claim, wake waiting polls,
//! and never close a dependency cycle, even when two edits race to close one.

use chrono::{Duration as Span, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

fn at(from_now: Span) -> String {
    (Utc::now() + from_now).to_rfc3339()
}

async fn patch(app: &TestApp, task: &str, body: Value) -> Answer {
    app.admin(Method::PATCH, &format!("/v1/tasks/{task}"), Some(body))
        .await
}

#[sqlx::test]
async fn not_before_and_a_reservation_move_and_a_waiting_poll_follows(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "later"}))
        .await;
    let w = app.register("w", &[], 5, 1).await;
    let patched = patch(&app, &t, json!({"not_before": at(Span::hours(1))}))
        .await
        .expect(StatusCode::OK);
    assert!(patched["not_before"].is_string());
    assert!(app.poll(&w).await.is_empty(), "not yet");
    // a long poll waits; removing not_before wakes it with the task
    let waiting = app.poll_query(&w, "?wait=10");
    let clear = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        patch(&app, &t, json!({"not_before": ""}))
            .await
            .expect(StatusCode::OK);
    };
    let (leases, _) = tokio::join!(waiting, clear);
    assert_eq!(leases.len(), 1, "woken by the edit");
    app.report(&w, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);

    let other = app.register("other", &[], 5, 1).await;
    patch(
        &app,
        &t,
        json!({"reserved_for": other.id, "reserved_until": at(Span::hours(1))}),
    )
    .await
    .expect(StatusCode::OK);
    assert!(app.poll(&w).await.is_empty(), "held for the other");
    let e = patch(&app, &t, json!({"reserved_for": other.id}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(e["details"].as_str().unwrap().starts_with("reserved_until"));
    patch(&app, &t, json!({"reserved_for": ""}))
        .await
        .expect(StatusCode::OK);
    let (reserved, until): (Option<String>, Option<chrono::DateTime<Utc>>) =
        sqlx::query_as("select reserved_for, reserved_until from tasks where id = $1")
            .bind(&t)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((reserved, until), (None, None));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn dependencies_must_exist_and_never_lead_back(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    let ids = app
        .create_tasks(
            (0..3)
                .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
                .collect(),
        )
        .await;
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    patch(&app, b, json!({"depends_on": [c]}))
        .await
        .expect(StatusCode::OK);
    patch(&app, c, json!({"depends_on": [a]}))
        .await
        .expect(StatusCode::OK);
    // a -> b -> c -> a would never become ready
    let e = patch(&app, a, json!({"depends_on": [b]}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(e["details"].as_str().unwrap().contains(b.as_str()), "{e}");
    patch(&app, a, json!({"depends_on": [a]}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    let e = patch(&app, a, json!({"depends_on": ["t_nope"]}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"].as_str().unwrap().starts_with("depends_on[0]"),
        "{e}"
    );
    let deps: Vec<String> = sqlx::query_scalar("select depends_on from tasks where id = $1")
        .bind(a)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(deps.is_empty(), "nothing changed");
    // b waits on c (which waits on a): only a is claimable; clearing frees c
    let w = app.register("w", &[], 10, 3).await;
    let held: Vec<String> = app
        .poll(&w)
        .await
        .iter()
        .map(|l| l["task_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(held, std::slice::from_ref(a));
    patch(&app, c, json!({"depends_on": []}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.poll(&w).await.len(), 2, "c is ready now");
    assert_invariants(&pool).await;
}

/// Pairs of edits that each alone are fine but together close a cycle (a waits on b, b
/// waits on a), sent at once: at most one of each pair lands.
#[sqlx::test]
async fn racing_edits_never_close_a_cycle(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    let n = 12;
    let ids = app
        .create_tasks(
            (0..2 * n)
                .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
                .collect(),
        )
        .await;
    let pairs = ids.chunks(2).map(|p| {
        let app = &app;
        async move {
            let (x, y) = tokio::join!(
                patch(app, &p[0], json!({"depends_on": [p[1]]})),
                patch(app, &p[1], json!({"depends_on": [p[0]]}))
            );
            [x.status, y.status]
                .iter()
                .filter(|s| **s == StatusCode::OK)
                .count()
        }
    });
    for landed in futures::future::join_all(pairs).await {
        assert_eq!(landed, 1, "exactly one edit of each pair lands");
    }
    assert_invariants(&pool).await;
}
