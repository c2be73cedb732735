//! Status reports: every row of the transition table, lease loss, idempotency, requeues.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

const PR: &str = "https://github.com/acme/w/pull/7";

fn body(status: &str) -> Value {
    json!({"status": status, "pr_url": pr_link("acme/w"), "message": "note"})
}

/// A fresh task leased to `w` and moved to `from`.
async fn task_in(app: &TestApp, w: &Worker, from: &str) -> String {
    // above every earlier task, requeued ones included, so this poll claims exactly it
    let n: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let t = app
        .create_task(json!({"repo": "r", "title": format!("from {from}"), "priority": 1000 + n}))
        .await;
    let leases = app.poll_query(w, "?max=1").await;
    assert!(
        leases.iter().any(|l| l["task_id"] == t.as_str()),
        "the new task is leased"
    );
    if from != "leased" {
        app.report(w, &t, body(from)).await.expect(StatusCode::OK);
    }
    t
}

#[sqlx::test]
async fn every_row_of_the_transition_table(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10_000, false).await;
    let w = app.register("w", &[], 1000, 100).await;
    let allowed: &[(&str, &[(&str, &str)])] = &[
        (
            "leased",
            &[
                ("in_progress", "in_progress"),
                ("blocked", "blocked"),
                ("pr_opened", "pr_opened"),
                ("completed", "completed"),
                ("failed", "ready"),
                ("released", "ready"),
            ],
        ),
        (
            "in_progress",
            &[
                ("blocked", "blocked"),
                ("pr_opened", "pr_opened"),
                ("completed", "completed"),
                ("failed", "ready"),
                ("released", "ready"),
            ],
        ),
        (
            "blocked",
            &[
                ("in_progress", "in_progress"),
                ("pr_opened", "pr_opened"),
                ("failed", "ready"),
                ("released", "ready"),
            ],
        ),
        ("pr_opened", &[("merged", "merged"), ("closed", "ready")]),
    ];
    let reports = [
        "leased",
        "in_progress",
        "blocked",
        "pr_opened",
        "completed",
        "merged",
        "failed",
        "released",
        "closed",
        "ready",
    ];
    for (from, tos) in allowed {
        for to in reports {
            let t = task_in(&app, &w, from).await;
            let answer = app.report(&w, &t, body(to)).await;
            if let Some((_, result)) = tos.iter().find(|(name, _)| *name == to) {
                let b = answer.expect(StatusCode::OK);
                assert_eq!(b["ok"], true);
                assert_eq!(b["task_id"], t.as_str());
                assert_eq!(b["status"], *result, "{from} -> {to}");
                let (status, _, _) = app.task_row(&t).await;
                assert_eq!(status, *result, "{from} -> {to} stored");
            } else if to == *from {
                let b = answer.expect(StatusCode::OK);
                assert_eq!(
                    b["status"], *from,
                    "repeating the current status is a no-op"
                );
            } else {
                let e = answer.expect_error(StatusCode::CONFLICT, "conflict");
                assert_eq!(e["details"], format!("invalid_transition: {from} -> {to}"));
                let (status, _, _) = app.task_row(&t).await;
                assert_eq!(status, *from, "a refused transition changes nothing");
            }
            // leave no live lease behind, so the next round's poll claims exactly its task
            let (now, _, _) = app.task_row(&t).await;
            if ["leased", "in_progress", "blocked"].contains(&now.as_str()) {
                app.report(&w, &t, body("released"))
                    .await
                    .expect(StatusCode::OK);
            }
        }
    }
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn accepted_updates_renew_the_lease_and_pr_opened_ends_it(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let w = app.register("w", &[], 5, 2).await;
    let t = task_in(&app, &w, "leased").await;
    sqlx::query("update tasks set lease_expires_at = now() + interval '1 minute' where id = $1")
        .bind(&t)
        .execute(&app.pool)
        .await
        .unwrap();
    let b = app
        .report(&w, &t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
    let exp =
        chrono::DateTime::parse_from_rfc3339(b["lease_expires_at"].as_str().unwrap()).unwrap();
    assert!(
        exp.signed_duration_since(chrono::Utc::now()).num_minutes() > 200,
        "renewed to now + 4h"
    );
    // a repeat renews too
    sqlx::query("update tasks set lease_expires_at = now() + interval '1 minute' where id = $1")
        .bind(&t)
        .execute(&app.pool)
        .await
        .unwrap();
    let b = app
        .report(&w, &t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
    let exp =
        chrono::DateTime::parse_from_rfc3339(b["lease_expires_at"].as_str().unwrap()).unwrap();
    assert!(exp.signed_duration_since(chrono::Utc::now()).num_minutes() > 200);

    app.report(&w, &t, json!({"status": "pr_opened"}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    app.report(
        &w,
        &t,
        json!({"status": "pr_opened", "pr_url": "http://insecure/pr"}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    let b = app
        .report(&w, &t, json!({"status": "pr_opened", "artifact": {"pr_url": PR, "commit_sha": "abc123", "extra": {"ci": "green"}}}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(b["lease_expires_at"], Value::Null, "the lease timer stops");
    assert_eq!(app.poll(&w).await.len(), 0, "pr_opened is not a live lease");
    let (pr, sha): (Option<String>, Option<String>) =
        sqlx::query_as("select pr_url, commit_sha from artifacts where task_id = $1")
            .bind(&t)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((pr.as_deref(), sha.as_deref()), (Some(PR), Some("abc123")));
    let task_pr: Option<String> = sqlx::query_scalar("select pr_url from tasks where id = $1")
        .bind(&t)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(task_pr.as_deref(), Some(PR));
    let kinds = audit_kinds(&app.pool, &t).await;
    assert_eq!(
        kinds,
        [
            "task_created",
            "lease_granted",
            "task_status_changed",
            "task_status_changed"
        ]
    );
}

#[sqlx::test]
async fn failures_requeue_until_max_attempts(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let w = app.register("w", &[], 5, 2).await;
    let t = app
        .create_task(json!({"repo": "r", "title": "flaky", "max_attempts": 2}))
        .await;
    app.poll(&w).await;
    let b = app
        .report(&w, &t, json!({"status": "failed", "message": "tests red"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(b["status"], "ready");
    assert_eq!(app.task_row(&t).await, ("ready".into(), 1, None));
    let leases = app.poll(&w).await;
    assert_eq!(
        leases[0]["attempt"], 1,
        "the lease says which attempt this is"
    );
    app.report(&w, &t, json!({"status": "pr_opened", "pr_url": PR}))
        .await
        .expect(StatusCode::OK);
    let b = app
        .report(&w, &t, json!({"status": "closed"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        b["status"], "failed",
        "closed counts as a failed attempt; 2 of 2"
    );
    let (status, attempt, _) = app.task_row(&t).await;
    assert_eq!((status.as_str(), attempt), ("failed", 2));
    assert_eq!(app.poll(&w).await.len(), 0);
    let kinds = audit_kinds(&app.pool, &t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "task_requeued").count(), 1);
    let reasons: Vec<String> = sqlx::query_scalar(
        "select reason from audit_events where task_id = $1 and kind = 'task_requeued'",
    )
    .bind(&t)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(reasons, ["failed"]);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn released_tasks_return_at_once_without_counting_an_attempt(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, true).await;
    let a = app.register("a", &[], 5, 2).await;
    let b = app.register("b", &[], 5, 2).await;
    let t = app
        .create_task(json!({"repo": "r", "title": "t", "area": "x"}))
        .await;
    app.poll(&a).await;
    app.report(&a, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.task_row(&t).await, ("ready".into(), 0, None));
    let got = app.poll(&b).await;
    assert_eq!(got[0]["task_id"], t.as_str(), "the area lock was freed too");
    // a retry of the release that was applied is answered 200 and changes nothing
    let retry = app
        .report(&a, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(retry["status"], "released");
    assert_eq!(app.task_row(&t).await.2.as_deref(), Some(b.id.as_str()));
}

#[sqlx::test]
async fn a_worker_whose_task_moved_on_gets_lease_lost(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let a = app.register("a", &[], 5, 2).await;
    let b = app.register("b", &[], 5, 2).await;
    let stranger = app.register("s", &[], 5, 2).await;
    let t = app.create_task(json!({"repo": "r", "title": "t"})).await;
    let lease_a = app.poll(&a).await[0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.report(&a, &t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);

    // a stranger may not touch it
    app.report(&stranger, &t, json!({"status": "completed"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    // a wrong lease id: lease_lost, and nothing changes
    let e = app
        .report(
            &a,
            &t,
            json!({"status": "completed", "lease_id": "l_other"}),
        )
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    // the lease expires (as if the TTL ran out): lease_lost
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(&t)
        .execute(&app.pool)
        .await
        .unwrap();
    let e = app
        .report(&a, &t, json!({"status": "completed", "lease_id": lease_a}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    assert_eq!(
        app.poll(&a).await.len(),
        0,
        "an expired lease is not offered back to its holder"
    );
    // the scheduler requeues it; b takes it; a's late report must not overwrite b's attempt
    owp_pool::scheduler::lease_expiry::run(
        &owp_pool::store::Db::from(app.pool.clone()),
        app.ctx.backoff(),
    )
    .await
    .unwrap();
    assert_eq!(app.poll(&b).await[0]["task_id"], t.as_str());
    for status in ["in_progress", "completed", "failed"] {
        let e = app
            .report(&a, &t, json!({"status": status}))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(e["details"], "lease_lost", "{status}");
    }
    let (status, attempt, holder) = app.task_row(&t).await;
    assert_eq!(
        (status.as_str(), attempt, holder.as_deref()),
        ("leased", 1, Some(b.id.as_str()))
    );
    app.report(&b, &t, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn terminal_tasks_refuse_further_changes(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let w = app.register("w", &[], 5, 2).await;
    let t = app.create_task(json!({"repo": "r", "title": "t"})).await;
    app.poll(&w).await;
    app.report(&w, &t, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    app.report(&w, &t, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    let e = app
        .report(&w, &t, json!({"status": "in_progress"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "invalid_transition: completed -> in_progress");
    let kinds = audit_kinds(&app.pool, &t).await;
    assert_eq!(
        kinds.iter().filter(|k| *k == "task_status_changed").count(),
        1,
        "the repeat wrote nothing"
    );
}

#[sqlx::test]
async fn admins_may_merge_or_close_an_opened_pr_and_nothing_else(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let w = app.register("w", &[], 5, 3).await;
    let merged = app.create_task(json!({"repo": "r", "title": "m"})).await;
    let live = app.create_task(json!({"repo": "r", "title": "l"})).await;
    app.poll(&w).await;
    app.report(&w, &merged, json!({"status": "pr_opened", "pr_url": PR}))
        .await
        .expect(StatusCode::OK);
    let path = format!("/v1/tasks/{merged}/status");
    let b = app
        .admin(Method::POST, &path, Some(json!({"status": "merged"})))
        .await
        .expect(StatusCode::OK);
    assert_eq!(b["status"], "merged");
    app.admin(
        Method::POST,
        &format!("/v1/tasks/{live}/status"),
        Some(json!({"status": "completed"})),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.call(
        Method::POST,
        &path,
        &[("x-admin-token", "bad")],
        Some(json!({"status": "merged"})),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
}

#[sqlx::test]
async fn bad_reports_are_refused_before_anything_changes(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let w = app.register("w", &[], 5, 2).await;
    let t = task_in(&app, &w, "leased").await;
    for (bad, field) in [
        (json!({"status": "done"}), "status"),
        (json!({}), "status"),
        (json!({"status": 3}), "status"),
        (
            json!({"status": "in_progress", "message": "m".repeat(2001)}),
            "message",
        ),
        (
            json!({"status": "in_progress", "artifact": "x"}),
            "artifact",
        ),
    ] {
        let e = app
            .report(&w, &t, bad.clone())
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            e["details"].as_str().unwrap().starts_with(field),
            "{bad} -> {e}"
        );
    }
    app.report(&w, "t_missing", json!({"status": "in_progress"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.task_row(&t).await.0, "leased");
}
