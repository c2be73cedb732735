//! PR slots that cannot leak: repos pin PR URLs to their forge, and PRs nobody merges or
//! closes are reported stale and can be closed in bulk.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

const PREFIX: &str = "https://github.com/acme/widgets/pull/";

async fn open_pr(app: &TestApp, w: &Worker, task: &str, url: &str) -> Answer {
    app.report(w, task, json!({"status": "pr_opened", "pr_url": url}))
        .await
}

#[sqlx::test]
async fn a_pr_url_outside_the_repos_prefix_is_refused_naming_the_field(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/widgets", "max_open_prs": 2, "pr_url_prefix": PREFIX})),
    )
    .await
    .expect(StatusCode::CREATED);
    let t = app
        .create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    app.poll(&w).await;

    for foreign in [
        "https://github.com/evil/widgets/pull/1",
        "https://github.com/acme/widgets/issues/1",
        "https://example.com/acme/widgets/pull/1",
    ] {
        let a = open_pr(&app, &w, &t, foreign).await;
        let body = a.expect(StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], "validation_error");
        let details = body["details"].as_str().unwrap();
        assert!(
            details.starts_with("pr_url:") && details.contains(PREFIX),
            "{details}"
        );
    }
    // refused means nothing changed
    assert_eq!(app.task_row(&t).await.0, "leased");

    // the prefix stays when a later update leaves it out, and "" removes it
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/widgets", "max_open_prs": 2})),
    )
    .await
    .expect(StatusCode::OK);
    open_pr(&app, &w, &t, "https://github.com/evil/widgets/pull/1")
        .await
        .expect(StatusCode::BAD_REQUEST);
    open_pr(&app, &w, &t, &format!("{PREFIX}7"))
        .await
        .expect(StatusCode::OK);
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/widgets", "max_open_prs": 2, "pr_url_prefix": ""})),
    )
    .await
    .expect(StatusCode::OK);
    let prefix: (Option<String>,) =
        sqlx::query_as("select pr_url_prefix from repositories where repo = 'acme/widgets'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(prefix.0, None);

    // a prefix must itself be an https URL
    let bad = app
        .admin(
            Method::POST,
            "/v1/admin/repos",
            Some(json!({"repo": "acme/widgets", "pr_url_prefix": "github.com/acme"})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(bad["details"]
        .as_str()
        .unwrap()
        .starts_with("pr_url_prefix:"));
}

#[sqlx::test]
async fn stale_prs_are_reported_and_closed_in_bulk_freeing_their_slots(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 3, true).await;
    let tasks = app
        .create_tasks(
            (0..3)
                .map(|i| json!({"repo": "acme/r", "title": format!("t{i}"), "area": format!("a{i}")}))
                .collect(),
        )
        .await;
    let w = app.register("w", &[], 10, 3).await;
    assert_eq!(app.poll(&w).await.len(), 3);
    for (i, t) in tasks.iter().enumerate() {
        open_pr(
            &app,
            &w,
            t,
            &format!("https://github.com/acme/r/pull/{}", i + 1),
        )
        .await
        .expect(StatusCode::OK);
    }
    // two PRs opened 15 days ago (default OWP_PR_STALE_AFTER is 14 days), one today
    sqlx::query("update tasks set pr_opened_at = now() - interval '15 days' where id = any($1)")
        .bind(&tasks[..2])
        .execute(&pool)
        .await
        .unwrap();

    let state = app.state().await;
    assert_eq!(state["tasks_pr_stale"], 2);
    assert_eq!(state["repositories"][0]["stale_prs"], 2);
    assert_eq!(state["repositories"][0]["current_open_prs"], 3);
    let listed = app
        .admin(Method::GET, "/v1/admin/stale-prs?repo=acme/r", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(listed["stale_after_seconds"], 14 * 24 * 3600);
    let mut ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want = vec![tasks[0].as_str(), tasks[1].as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    assert_eq!(listed["tasks"][0]["worker_id"], w.id.as_str());

    // closing names one stale and one fresh task: only the stale one closes
    let closed = app
        .admin(
            Method::POST,
            "/v1/admin/stale-prs/close",
            Some(json!({"task_ids": [&tasks[0], &tasks[2], "t_nope"]})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(closed["closed"], json!([&tasks[0]]));
    assert_eq!(closed["skipped"].as_array().unwrap().len(), 2);
    assert_eq!(app.task_row(&tasks[2]).await.0, "pr_opened");
    // no ids: every stale PR left
    let closed = app
        .admin(Method::POST, "/v1/admin/stale-prs/close", Some(json!({})))
        .await
        .expect(StatusCode::OK);
    assert_eq!(closed["closed"], json!([&tasks[1]]));

    // a closed PR is a failed attempt: requeued, slot and area freed, audited as admin
    let (status, attempt, holder) = app.task_row(&tasks[0]).await;
    assert_eq!((status.as_str(), attempt, holder), ("ready", 1, None));
    let state = app.state().await;
    assert_eq!(state["tasks_pr_stale"], 0);
    assert_eq!(state["repositories"][0]["current_open_prs"], 1);
    let kinds = audit_kinds(&pool, &tasks[0]).await;
    let mut last_two = kinds[kinds.len() - 2..].to_vec();
    last_two.sort();
    assert_eq!(
        last_two,
        ["task_requeued", "task_status_changed"],
        "{kinds:?}"
    );
    let actor: (Option<String>, serde_json::Value) = sqlx::query_as(
        "select worker_id, data from audit_events
         where task_id = $1 and kind = 'task_status_changed' and to_status = 'closed'",
    )
    .bind(&tasks[0])
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor.0, None, "closed by the admin, not the worker");
    assert!(actor.1["message"].as_str().unwrap().starts_with("stale"));

    let refused = app
        .admin(
            Method::POST,
            "/v1/admin/stale-prs/close",
            Some(json!({"task_ids": []})),
        )
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert!(refused["details"]
        .as_str()
        .unwrap()
        .starts_with("task_ids:"));
    let anon = app
        .call(Method::GET, "/v1/admin/stale-prs", &[], None)
        .await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);
    assert_invariants(&pool).await;
}
