//! Planned work (issue 27): `not_before`, `depends_on` and a reservation (`reserved_for`
//! until `reserved_until`) keep a task out of every claim and offer until due.

use chrono::{Duration as Span, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

fn at(from_now: Span) -> String {
    (Utc::now() + from_now).to_rfc3339()
}

#[sqlx::test]
async fn a_reserved_task_waits_for_its_worker_until_the_reservation_ends(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 10, false).await;
    let (alice, bob) = (
        app.register("alice", &[], 10, 10).await,
        app.register("bob", &[], 10, 10).await,
    );
    let held = app
        .create_task(
            json!({"repo": "acme/r", "title": "for alice", "reserved_for": alice.id,
                            "reserved_until": at(Span::hours(1))}),
        )
        .await;
    let lapsed = app
        .create_task(
            json!({"repo": "acme/r", "title": "was for alice", "reserved_for": alice.id,
                            "reserved_until": at(Span::seconds(-1))}),
        )
        .await;
    assert_eq!(
        ids(&app.poll(&bob).await),
        vec![lapsed.clone()],
        "a lapsed reservation binds nobody"
    );
    let offers = app
        .as_worker(&bob, Method::POST, "/v1/work/offers", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(offers["offers"], json!([]), "nor is it offered to another");
    assert_eq!(ids(&app.poll(&alice).await), vec![held.clone()]);
    let t = app
        .admin(Method::GET, &format!("/v1/tasks/{held}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(t["reserved_for"], alice.id.as_str());
    assert!(t["reserved_until"].is_string());
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn a_task_waits_for_its_dependencies_to_be_done(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 10, false).await;
    let w = app.register("w", &[], 10, 10).await;
    let first = app
        .create_task(json!({"repo": "acme/r", "title": "first", "priority": 1}))
        .await;
    let second = app
        .create_task(
            json!({"repo": "acme/r", "title": "second", "priority": 99, "depends_on": [first]}),
        )
        .await;
    assert_eq!(
        ids(&app.poll(&w).await),
        vec![first.clone()],
        "the higher priority waits"
    );
    app.report(&w, &first, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(ids(&app.poll(&w).await), vec![second.clone()]);
    let t = app
        .admin(Method::GET, &format!("/v1/tasks/{second}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(t["depends_on"], json!([first]));
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn a_waiting_poll_gets_a_task_when_its_not_before_comes(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 10, false).await;
    let w = app.register("w", &[], 10, 10).await;
    let due = at(Span::seconds(2));
    let task = app
        .create_task(json!({"repo": "acme/r", "title": "later", "not_before": due}))
        .await;
    assert_eq!(app.poll(&w).await.len(), 0, "not yet");
    // nothing announces the time: the replica's check of the queue wakes the poll
    let leases = app.poll_query(&w, "?wait=20").await;
    assert_eq!(ids(&leases), vec![task.clone()]);
    let granted: chrono::DateTime<Utc> =
        sqlx::query_scalar("select granted_at from leases where task_id = $1")
            .bind(&task)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(
        granted >= chrono::DateTime::parse_from_rfc3339(&due).unwrap(),
        "granted at {granted}, due {due}"
    );
}

#[sqlx::test]
async fn bad_plans_name_their_field_and_create_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 10, false).await;
    let cases = [
        (
            json!({"repo": "acme/r", "title": "t", "not_before": "tomorrow"}),
            "not_before",
        ),
        (
            json!({"repo": "acme/r", "title": "t", "reserved_for": "w_x"}),
            "reserved_until",
        ),
        (
            json!({"repo": "acme/r", "title": "t", "reserved_until": at(Span::hours(1))}),
            "reserved_for",
        ),
        (
            json!({"repo": "acme/r", "title": "t", "depends_on": ["t_nope"]}),
            "depends_on[0]",
        ),
        (
            json!([{"repo": "acme/r", "title": "a"}, {"repo": "acme/r", "title": "b", "depends_on": ["t_nope"]}]),
            "[1].depends_on[0]",
        ),
    ];
    for (body, field) in cases {
        let e = app
            .admin(Method::POST, "/v1/admin/tasks", Some(body))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            e["details"].as_str().unwrap().starts_with(field),
            "{field}: {e}"
        );
    }
    let n: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// Twelve workers poll at once, round after round, over tasks of which two thirds are
/// planned: none of those is granted early, to anyone else, or before its dependency.
#[sqlx::test]
async fn concurrent_polls_never_take_planned_work_early(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10_000, false).await;
    let workers =
        futures::future::join_all((0..12).map(|i| app.register_owned(format!("w{i}")))).await;
    let blocker = app
        .create_task(json!({"repo": "acme/r", "title": "never done", "priority": -1}))
        .await;
    let tasks: Vec<Value> = (0..150)
        .map(|i| match i % 3 {
            0 => json!({"repo": "acme/r", "title": format!("held {i}"), "priority": 50,
                        "reserved_for": workers[0].id, "reserved_until": at(Span::hours(1))}),
            1 => json!({"repo": "acme/r", "title": format!("later {i}"), "priority": 50,
                        "not_before": at(Span::hours(1))}),
            _ => json!({"repo": "acme/r", "title": format!("after {i}"), "priority": 50,
                        "depends_on": [blocker]}),
        })
        .collect();
    app.create_tasks(tasks).await;
    let free: Vec<Value> = (0..60)
        .map(|i| json!({"repo": "acme/r", "title": format!("free {i}")}))
        .collect();
    app.create_tasks(free).await;
    for _ in 0..5 {
        futures::future::join_all(workers.iter().map(|w| async {
            for lease in app.poll(w).await {
                let id = lease["task_id"].as_str().unwrap();
                if id != blocker {
                    app.report(w, id, json!({"status": "completed"}))
                        .await
                        .expect(StatusCode::OK);
                }
            }
        }))
        .await;
    }
    let early: Vec<(String, String)> = sqlx::query_as(
        "select t.title, l.worker_id from leases l join tasks t on t.id = l.task_id
         where (t.reserved_for is not null and l.worker_id <> t.reserved_for and l.granted_at < t.reserved_until)
            or (t.not_before is not null and l.granted_at < t.not_before)
            or (t.depends_on <> '{}')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(early.is_empty(), "planned work granted early: {early:?}");
    let held_by_owner: i64 = sqlx::query_scalar(
        "select count(*) from leases l join tasks t on t.id = l.task_id where t.reserved_for = l.worker_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(held_by_owner > 0, "the reserved worker got its tasks");
    assert_invariants(&app.pool).await;
}
