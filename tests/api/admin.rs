//! Admin endpoints: repos, tasks (single and bulk), state.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn repos_are_created_then_updated(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = app
        .admin(
            Method::POST,
            "/v1/admin/repos",
            Some(json!({"repo": "acme/widgets"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(body, json!({"ok": true, "repo": "acme/widgets"}));
    let state = app.state().await;
    assert_eq!(
        state["repositories"],
        json!([{"repo": "acme/widgets", "max_open_prs": 3, "current_open_prs": 0, "area_locks_enabled": true, "stale_prs": 0}])
    );
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/widgets", "max_open_prs": 0, "area_locks_enabled": false})),
    )
    .await
    .expect(StatusCode::OK);
    let state = app.state().await;
    assert_eq!(state["repositories"][0]["max_open_prs"], 0);
    assert_eq!(state["repositories"][0]["area_locks_enabled"], false);

    for bad in [
        json!({"repo": ""}),
        json!({"repo": "r", "max_open_prs": -1}),
        json!({"repo": "r", "max_open_prs": 10001}),
        json!({"repo": "x".repeat(201)}),
        json!({"repo": "r", "area_locks_enabled": "yes"}),
    ] {
        app.admin(Method::POST, "/v1/admin/repos", Some(bad))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    }
}

#[sqlx::test]
async fn tasks_get_defaults_and_an_audit_event(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    let id = app
        .create_task(json!({"repo": "r", "title": "Fix the docs"}))
        .await;
    assert!(id.starts_with("t_"));
    let row: (String, i32, i32, i32, i16, i32, Vec<String>, Option<String>) = sqlx::query_as(
        "select status, estimate_points, priority, attempt, tier, max_attempts, required_skills, area from tasks where id = $1",
    )
    .bind(&id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(row, ("ready".into(), 1, 10, 0, 0, 3, vec![], None));
    assert_eq!(audit_kinds(&app.pool, &id).await, ["task_created"]);
    let state = app.state().await;
    assert_eq!(
        (state["tasks_ready"].clone(), state["tasks_queued"].clone()),
        (json!(1), json!(1))
    );
}

#[sqlx::test]
async fn bulk_import_is_all_or_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    let ids = app
        .create_tasks(
            (0..50)
                .map(|i| json!({"repo": "r", "title": format!("t{i}"), "required_skills": ["Go"]}))
                .collect(),
        )
        .await;
    assert_eq!(ids.len(), 50);
    let skills: Vec<String> =
        sqlx::query_scalar("select required_skills[1] from tasks where id = $1")
            .bind(&ids[7])
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        skills,
        ["go"],
        "required skills are normalised like worker skills"
    );

    // one bad element: 400 naming it, and nothing of the batch is created
    let err = app
        .admin(Method::POST, "/v1/admin/tasks",
               Some(json!([{"repo": "r", "title": "ok"}, {"repo": "r", "title": "ok"}, {"repo": "r", "title": ""}])))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        err["details"].as_str().unwrap().starts_with("[2].title"),
        "{err}"
    );
    // an unknown repo anywhere in the batch: 404, nothing created
    app.admin(
        Method::POST,
        "/v1/admin/tasks",
        Some(json!([{"repo": "r", "title": "ok"}, {"repo": "nope", "title": "x"}])),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let n: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 50);
    let empty = app
        .admin(Method::POST, "/v1/admin/tasks", Some(json!([])))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(
        empty,
        json!({"ok": true, "task_ids": [], "created": 0}),
        "an empty import is a no-op"
    );
}

#[sqlx::test]
async fn task_fields_are_validated(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    let cases = [
        (json!({"repo": "r"}), "title"),
        (json!({"repo": "r", "title": "x".repeat(301)}), "title"),
        (
            json!({"repo": "r", "title": "t", "description": "d".repeat(20_001)}),
            "description",
        ),
        (
            json!({"repo": "r", "title": "t", "estimate_points": 0}),
            "estimate_points",
        ),
        (
            json!({"repo": "r", "title": "t", "estimate_points": 101}),
            "estimate_points",
        ),
        (json!({"repo": "r", "title": "t", "tier": 4}), "tier"),
        (
            json!({"repo": "r", "title": "t", "max_attempts": 0}),
            "max_attempts",
        ),
        (
            json!({"repo": "r", "title": "t", "priority": 1.5}),
            "priority",
        ),
        (
            json!({"repo": "r", "title": "t", "area": "a".repeat(101)}),
            "area",
        ),
        (
            json!({"repo": "r", "title": "t", "required_skills": [1]}),
            "required_skills[0]",
        ),
    ];
    for (body, field) in cases {
        let err = app
            .admin(Method::POST, "/v1/admin/tasks", Some(body.clone()))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            err["details"].as_str().unwrap().contains(field),
            "{body} -> {err}"
        );
    }
    app.admin(
        Method::POST,
        "/v1/admin/tasks",
        Some(json!({"repo": "ghost", "title": "t"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn admin_routes_need_the_admin_token_and_refuse_worker_tokens(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("w", &[], 5, 2).await;
    let bearer = format!("Bearer {}", w.token);
    for (method, path) in [
        (Method::GET, "/v1/admin/state"),
        (Method::POST, "/v1/admin/repos"),
        (Method::POST, "/v1/admin/tasks"),
    ] {
        let body = (method == Method::POST).then(|| json!({"repo": "r", "title": "t"}));
        app.call(method.clone(), path, &[], body.clone())
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
        app.call(
            method.clone(),
            path,
            &[("x-admin-token", "wrong")],
            body.clone(),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
        app.call(
            method.clone(),
            path,
            &[("authorization", &bearer)],
            body.clone(),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
        app.call(method, path, &[("x-admin-token", &w.token)], body)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    }
}

#[sqlx::test]
async fn admin_tokens_rotate_by_listing_several(pool: PgPool) {
    let state = owp_pool::app::AppContext::new(
        pool,
        test_settings(),
        owp_pool::auth::TokenSet::new(["old", "new"]),
        owp_pool::auth::Registration::Open,
    );
    let app = spawn_ctx(state).await;
    for t in ["old", "new"] {
        app.call(
            Method::GET,
            "/v1/admin/state",
            &[("x-admin-token", t)],
            None,
        )
        .await
        .expect(StatusCode::OK);
    }
}

#[sqlx::test]
async fn state_counts_every_status_and_open_slots(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 5, false).await;
    let ids = app
        .create_tasks(
            (0..6)
                .map(|i| json!({"repo": "r", "title": format!("t{i}"), "priority": 100 - i}))
                .collect(),
        )
        .await;
    let w = app.register("w", &[], 100, 5).await;
    let leases = app.poll_query(&w, "?max=5").await;
    assert_eq!(leases.len(), 5);
    app.report(&w, &ids[0], json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
    app.report(&w, &ids[1], json!({"status": "blocked"}))
        .await
        .expect(StatusCode::OK);
    app.report(
        &w,
        &ids[2],
        json!({"status": "pr_opened", "pr_url": "https://github.com/o/r/pull/1"}),
    )
    .await
    .expect(StatusCode::OK);
    app.report(&w, &ids[3], json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    let s = app.state().await;
    assert_eq!(s["workers_total"], 1);
    assert_eq!(s["workers_online"], 1);
    assert_eq!(s["tasks_ready"], 1, "{s}");
    assert_eq!(s["tasks_leased"], 1);
    assert_eq!(s["tasks_in_progress"], 1);
    assert_eq!(s["tasks_blocked"], 1);
    assert_eq!(s["tasks_pr_opened"], 1);
    assert_eq!(s["tasks_completed"], 1);
    assert_eq!(s["tasks_merged"], 0);
    assert_eq!(s["tasks_failed"], 0);
    assert_eq!(s["repositories"][0]["current_open_prs"], 4);
    assert!(
        s["scheduler"].get("leader").is_some() && s["scheduler"].get("last_sweep_at").is_some()
    );
}

/// Reads server-sent events until one named `state` satisfies `want`, within a deadline.
async fn next_state(
    resp: &mut reqwest::Response,
    buf: &mut String,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if event.lines().any(|l| l == "event: state") {
                let v: serde_json::Value = serde_json::from_str(&data).unwrap();
                if want(&v) {
                    return v;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .expect("an event in time")
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk.expect("the stream stays open")).unwrap());
    }
}

#[sqlx::test]
async fn the_state_stream_sends_the_state_and_then_its_changes(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    app.call(Method::GET, "/v1/admin/state/stream", &[], None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    let mut resp = app
        .http
        .get(format!("{}/v1/admin/state/stream", app.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let mut buf = String::new();
    let first = next_state(&mut resp, &mut buf, |_| true).await;
    assert_eq!(first["tasks_ready"], 0);
    assert_eq!(
        first,
        app.state().await,
        "the stream sends the same object as GET /v1/admin/state"
    );
    app.create_task(json!({"repo": "r", "title": "new"})).await;
    let changed = next_state(&mut resp, &mut buf, |s| s["tasks_ready"] == 1).await;
    assert_eq!(changed["tasks_queued"], 1);
}

#[sqlx::test]
async fn an_external_id_makes_one_task_however_often_and_concurrently_it_is_sent(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/a", 3, true).await;
    app.create_repo("acme/b", 3, true).await;
    let one = json!({"repo": "acme/a", "title": "Issue 1", "external_id": "github:acme/a#1"});
    let first = app
        .admin(Method::POST, "/v1/admin/tasks", Some(one.clone()))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(first["created"], true);
    let again = app
        .admin(Method::POST, "/v1/admin/tasks", Some(one))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (&again["task_id"], &again["created"]),
        (&first["task_id"], &json!(false))
    );
    // the same key in another repo is another task
    let other = app
        .admin(
            Method::POST,
            "/v1/admin/tasks",
            Some(json!({"repo": "acme/b", "title": "Issue 1", "external_id": "github:acme/a#1"})),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_ne!(other["task_id"], first["task_id"]);
    // twice in one array: refused, naming the second
    let twice = json!([
        {"repo": "acme/a", "title": "x", "external_id": "k"},
        {"repo": "acme/a", "title": "y", "external_id": "k"}
    ]);
    let e = app
        .admin(Method::POST, "/v1/admin/tasks", Some(twice))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .starts_with("[1].external_id"),
        "{e}"
    );

    // eight imports of the same 60 keyed tasks at once (in different orders): each task
    // exists once, every answer names the same ids, and nothing deadlocks
    let batch: Vec<Value> = (0..60)
        .map(|i| json!({"repo": "acme/a", "title": format!("t{i}"), "external_id": format!("key-{i}")}))
        .collect();
    let answers = futures::future::join_all((0..8).map(|n| {
        let mut b = batch.clone();
        if n % 2 == 1 {
            b.reverse();
        }
        let app = &app;
        async move {
            let body = app
                .admin(Method::POST, "/v1/admin/tasks", Some(Value::Array(b)))
                .await
                .expect(StatusCode::CREATED);
            let mut ids: Vec<String> = body["task_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            if n % 2 == 1 {
                ids.reverse();
            }
            (ids, body["created"].as_u64().unwrap())
        }
    }))
    .await;
    let created: u64 = answers.iter().map(|a| a.1).sum();
    assert_eq!(
        created, 60,
        "each key created exactly once across the imports"
    );
    assert!(answers.iter().all(|a| a.0 == answers[0].0));
    let n: i64 = sqlx::query_scalar("select count(*) from tasks where external_id like 'key-%'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 60);
    let audited: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where kind = 'task_created' and task_id in
           (select id from tasks where external_id like 'key-%')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        audited, 60,
        "one task_created event per task actually created"
    );
    assert_invariants(&app.pool).await;
}
