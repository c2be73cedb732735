//! The operator's control surface: reading tasks, workers, repos and the audit log page by
//! page, and acting on tasks and workers, under concurrent traffic.

use std::collections::HashSet;
use std::time::Duration;

use owp_pool::app::AppContext;
use owp_pool::auth::{Registration, TokenSet};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

/// Follows `next_cursor` from `path` (which has a query string) to the end.
async fn walk(app: &TestApp, path: &str, field: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&cursor={c}"),
            None => path.to_string(),
        };
        let page = app
            .admin(Method::GET, &url, None)
            .await
            .expect(StatusCode::OK);
        out.extend(page[field].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
}

#[sqlx::test]
async fn pages_walk_a_changing_pool_without_gaps_or_repeats(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10_000, false).await;
    let mut ids = Vec::new();
    for chunk in 0..2 {
        let batch = (0..500)
            .map(|i| json!({"repo": "acme/r", "title": format!("t{chunk}-{i}")}))
            .collect();
        ids.extend(app.create_tasks(batch).await);
    }
    // workers claim and finish tasks while the walk goes on: statuses change, rows move
    let workers: Vec<Worker> =
        futures::future::join_all((0..8).map(|i| app.register_owned(format!("w{i}")))).await;
    let churn = async {
        for _ in 0..5 {
            for w in &workers {
                for l in app.poll(w).await {
                    let t = l["task_id"].as_str().unwrap();
                    app.report(w, t, json!({"status": "completed"})).await;
                }
            }
        }
    };
    let (seen, ()) = tokio::join!(walk(&app, "/v1/tasks?limit=37", "tasks"), churn);
    let seen: Vec<String> = seen
        .iter()
        .map(|t| t["task_id"].as_str().unwrap().into())
        .collect();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a task was listed twice");
    assert_eq!(seen.len(), 1000, "a task was skipped");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "pages come in id (creation) order");

    // filters: a status list, repo, worker, area
    let done = walk(&app, "/v1/tasks?status=completed,merged&limit=200", "tasks").await;
    let completed: i64 =
        sqlx::query_scalar("select count(*) from tasks where status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(done.len() as i64, completed);
    assert!(completed > 0 && done.iter().all(|t| t["status"] == "completed"));
    let w0 = &workers[0].id;
    let by_worker = walk(
        &app,
        &format!("/v1/tasks?worker_id={w0}&limit=200"),
        "tasks",
    )
    .await;
    assert!(!by_worker.is_empty() && by_worker.iter().all(|t| t["worker_id"] == w0.as_str()));
    let repo = walk(&app, "/v1/tasks?repo=acme/r&limit=200", "tasks").await;
    assert_eq!(repo.len(), 1000);
    assert!(walk(&app, "/v1/tasks?repo=acme/other", "tasks")
        .await
        .is_empty());
    let bad = app.admin(Method::GET, "/v1/tasks?status=done", None).await;
    assert!(
        bad.expect_error(StatusCode::BAD_REQUEST, "validation_error")["details"]
            .as_str()
            .unwrap()
            .starts_with("status:")
    );
    app.admin(Method::GET, "/v1/tasks?cursor=bm9wZQ", None)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    app.admin(Method::GET, "/v1/tasks?limit=201", None)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_task_reads_with_its_history_and_only_its_workers_may_read_it(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 3, true).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t", "description": "d", "area": "docs"}))
        .await;
    let other_task = app
        .create_task(json!({"repo": "acme/r", "title": "u"}))
        .await;
    let a = app.register("a", &[], 5, 1).await;
    let b = app.register("b", &[], 5, 1).await;
    let lease = app.poll(&a).await[0].clone();
    assert_eq!(lease["task_id"], t.as_str());
    app.report(
        &a,
        &t,
        json!({"status": "in_progress", "artifact": {"commit_sha": "abc"}}),
    )
    .await
    .expect(StatusCode::OK);

    let d = app
        .admin(Method::GET, &format!("/v1/tasks/{t}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(d["status"], "in_progress");
    assert_eq!(d["description"], "d");
    assert_eq!(d["current_lease"]["lease_id"], lease["lease_id"]);
    assert_eq!(d["leases"].as_array().unwrap().len(), 1);
    assert_eq!(d["artifacts"][0]["commit_sha"], "abc");
    let kinds: Vec<&str> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["task_created", "lease_granted", "task_status_changed"]
    );
    assert_eq!(d["events"][0]["actor"], "admin");
    assert_eq!(d["events"][1]["actor"], format!("worker:{}", a.id));

    // the holder may read it; another worker may not, nor a task it never held
    app.as_worker(&a, Method::GET, &format!("/v1/tasks/{t}"), None)
        .await
        .expect(StatusCode::OK);
    app.as_worker(&b, Method::GET, &format!("/v1/tasks/{t}"), None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.as_worker(&a, Method::GET, &format!("/v1/tasks/{other_task}"), None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.admin(Method::GET, "/v1/tasks/t_nope", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::GET, &format!("/v1/tasks/{t}"), &[], None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");

    // worker detail: leases, used capacity, never the token
    let wd = app
        .admin(Method::GET, &format!("/v1/workers/{}", a.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(wd["used_points"], 1);
    assert_eq!(wd["live_leases"], 1);
    assert_eq!(wd["leases"][0]["task_id"], t.as_str());
    let text = wd.to_string();
    assert!(
        !text.contains(&a.token) && !text.contains("digest"),
        "{text}"
    );
    let online = walk(&app, "/v1/workers?online=true", "workers").await;
    assert_eq!(online.len(), 2);
    let idle = walk(&app, "/v1/workers?status=idle", "workers").await;
    assert_eq!(idle.len(), 2);

    // the area filter
    let docs = app
        .admin(Method::GET, "/v1/tasks?area=docs", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(docs["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(docs["tasks"][0]["task_id"], t.as_str());
    assert_eq!(docs["next_cursor"], Value::Null);
    // repos: slots, ready, held areas
    let repos = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    let r = &repos["repositories"][0];
    assert_eq!(
        (r["open_slots"].as_i64(), r["ready"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(r["held_areas"], json!(["docs"]));
}

#[sqlx::test]
async fn the_audit_log_filters_counts_and_pages_by_cursor_and_offset(pool: PgPool) {
    let ctx = AppContext::new(
        pool.clone(),
        test_settings(),
        TokenSet::named(["alice=alice-token", ADMIN]),
        Registration::Open,
    );
    let app = spawn_ctx(ctx).await;
    let alice = [("x-admin-token", "alice-token")];
    app.call(
        Method::POST,
        "/v1/admin/repos",
        &alice,
        Some(json!({"repo": "acme/r"})),
    )
    .await
    .expect(StatusCode::CREATED);
    let tasks: Vec<Value> = (0..30)
        .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
        .collect();
    app.call(
        Method::POST,
        "/v1/admin/tasks",
        &alice,
        Some(Value::Array(tasks)),
    )
    .await
    .expect(StatusCode::CREATED);
    let w = app.register("w", &[], 5, 2).await;
    app.poll(&w).await;

    let all = app
        .admin(Method::GET, "/v1/audit/events?limit=200", None)
        .await
        .expect(StatusCode::OK);
    let total = all["total"].as_i64().unwrap();
    assert_eq!(total as usize, all["events"].as_array().unwrap().len());
    assert_eq!(all["total_exact"], true);
    assert_eq!(
        total,
        1 + 30 + 1 + 2,
        "repo, tasks, registration, two grants"
    );
    let ids: Vec<i64> = all["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert!(ids.windows(2).all(|p| p[0] > p[1]), "newest first");

    let created = app
        .admin(
            Method::GET,
            "/v1/audit/events?event_type=task_created&actor=admin:alice&limit=7",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(created["total"], 30);
    assert_eq!(created["events"].as_array().unwrap().len(), 7);
    assert!(created["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["actor"] == "admin:alice"));
    // cursor pages and offset pages agree
    let by_cursor = walk(
        &app,
        "/v1/audit/events?event_type=task_created&limit=7",
        "events",
    )
    .await;
    assert_eq!(by_cursor.len(), 30);
    let third = app
        .admin(
            Method::GET,
            "/v1/audit/events?event_type=task_created&limit=7&offset=14",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(third["events"], json!(by_cursor[14..21]));

    let mine = app
        .admin(
            Method::GET,
            &format!("/v1/audit/events?target={}", w.id),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(mine["total"], 1);
    assert_eq!(mine["events"][0]["event_type"], "worker_registered");
    let future = app
        .admin(
            Method::GET,
            "/v1/audit/events?since=2999-01-01T00:00:00Z",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(future["total"], 0);
    assert_eq!(future["next_cursor"], Value::Null);
}

#[sqlx::test]
async fn requeue_and_cancel_under_traffic_leave_the_holder_lease_lost(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 100, true).await;
    let ids = app
        .create_tasks((0..60).map(|i| json!({"repo": "acme/r", "title": format!("t{i}"), "area": format!("a{}", i % 7)})).collect())
        .await;
    let workers: Vec<Worker> =
        futures::future::join_all((0..10).map(|i| app.register_owned(format!("w{i}")))).await;
    // workers poll and report while an admin requeues and cancels
    let traffic = futures::future::join_all(workers.iter().map(|w| async {
        let mut lost = 0;
        for _ in 0..6 {
            for l in app.poll(w).await {
                let t = l["task_id"].as_str().unwrap();
                let a = app
                    .report(
                        w,
                        t,
                        json!({"status": "in_progress", "lease_id": l["lease_id"]}),
                    )
                    .await;
                if a.status == StatusCode::CONFLICT {
                    lost += 1;
                }
            }
        }
        lost
    }));
    let admin = async {
        for chunk in ids.chunks(10) {
            let (requeue, cancel) = chunk.split_at(5);
            app.admin(
                Method::POST,
                "/v1/tasks/requeue",
                Some(json!({"task_ids": requeue})),
            )
            .await
            .expect(StatusCode::OK);
            app.admin(
                Method::POST,
                "/v1/tasks/cancel",
                Some(json!({"task_ids": cancel})),
            )
            .await
            .expect(StatusCode::OK);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let (_, ()) = tokio::join!(traffic, admin);
    assert_invariants(&pool).await;

    // one task, step by step: the holder's next report is lease_lost
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "solo"}))
        .await;
    let w = app.register("solo", &[], 5, 1).await;
    sqlx::query("update tasks set priority = 1000 where id = $1")
        .bind(&t)
        .execute(&pool)
        .await
        .unwrap();
    let l = app.poll(&w).await;
    assert_eq!(l[0]["task_id"], t.as_str());
    let r = app
        .admin(
            Method::POST,
            &format!("/v1/tasks/{t}/requeue"),
            Some(json!({"reset_attempts": true})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(r["status"], "ready");
    let lost = app
        .report(&w, &t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::CONFLICT);
    assert_eq!(lost["details"], "lease_lost");
    let r = app
        .admin(Method::POST, &format!("/v1/tasks/{t}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(r["status"], "cancelled");
    assert!(app.state().await["tasks_cancelled"].as_i64().unwrap() >= 1);
    // a cancelled task stays cancelled; a finished one cannot be requeued
    let again = app
        .admin(Method::POST, &format!("/v1/tasks/{t}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(again["status"], "cancelled");
    let done = app
        .create_task(json!({"repo": "acme/r", "title": "done", "priority": 2000}))
        .await;
    let w2 = app.register("w2", &[], 5, 1).await;
    app.poll(&w2).await;
    app.report(&w2, &done, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    let refused = app
        .admin(Method::POST, &format!("/v1/tasks/{done}/requeue"), None)
        .await;
    assert_eq!(
        refused.expect_error(StatusCode::CONFLICT, "conflict")["details"],
        "invalid_transition: completed -> ready"
    );
    let kinds = audit_kinds(&pool, &t).await;
    assert!(
        kinds.contains(&"task_requeued".to_string())
            && kinds.ends_with(&["task_cancelled".to_string()])
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn revoke_works_at_once_on_another_replica_and_rotation_replaces_the_token(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app(pool.clone()).await;
    a.create_repo("acme/r", 5, false).await;
    let t = a.create_task(json!({"repo": "acme/r", "title": "t"})).await;
    let w = a.register("w", &[], 5, 2).await;
    assert_eq!(b.poll(&w).await.len(), 1);

    // pause: keeps the lease, gets no new work, its own heartbeat cannot lift it
    a.create_task(json!({"repo": "acme/r", "title": "u"})).await;
    a.admin(Method::POST, &format!("/v1/workers/{}/pause", w.id), None)
        .await
        .expect(StatusCode::OK);
    b.as_worker(
        &w,
        Method::POST,
        "/v1/workers/heartbeat",
        Some(json!({"status": "idle"})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(b.poll(&w).await.len(), 1, "a paused worker got new work");
    a.admin(Method::POST, &format!("/v1/workers/{}/resume", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(b.poll(&w).await.len(), 2);

    // rotate: the old token stops working, the new one works, on both replicas
    let rotated = a
        .admin(Method::POST, &format!("/v1/workers/{}/token", w.id), None)
        .await
        .expect(StatusCode::OK);
    let fresh = Worker {
        id: w.id.clone(),
        token: rotated["token"].as_str().unwrap().into(),
    };
    b.as_worker(&w, Method::GET, "/v1/work", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    assert_eq!(b.poll(&fresh).await.len(), 2);

    // revoke on replica a: replica b refuses the token on the very next request
    a.admin(Method::POST, &format!("/v1/workers/{}/revoke", w.id), None)
        .await
        .expect(StatusCode::OK);
    b.as_worker(&fresh, Method::GET, "/v1/work", None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    // its leases went back to the queue without a failed attempt
    let (status, attempt, holder) = a.task_row(&t).await;
    assert_eq!((status.as_str(), attempt, holder), ("ready", 0, None));
    let detail = a
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(detail["revoked"], true);
    a.admin(Method::POST, &format!("/v1/workers/{}/token", w.id), None)
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    a.admin(Method::POST, "/v1/workers/w_nope/pause", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let events = a
        .admin(
            Method::GET,
            &format!("/v1/audit/events?target={}&event_type=worker_revoked", w.id),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(events["events"][0]["actor"], "admin");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn patch_changes_a_task_unless_a_live_lease_would_be_invalidated(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, true).await;
    let t = app
        .create_task(
            json!({"repo": "acme/r", "title": "t", "required_skills": ["rust"], "area": "docs"}),
        )
        .await;
    let path = format!("/v1/tasks/{t}");
    // while ready, anything may change
    let v = app
        .admin(
            Method::PATCH,
            &path,
            Some(json!({"priority": 50, "title": "renamed", "estimate_points": 3})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (v["priority"].as_i64(), v["title"].as_str()),
        (Some(50), Some("renamed"))
    );
    assert_eq!(v["estimate_points"], 3);
    let w = app.register("w", &["rust"], 5, 1).await;
    assert_eq!(app.poll(&w).await.len(), 1);
    // leased: the skills, estimate, tier and area it was granted on stay
    for (body, field) in [
        (json!({"required_skills": ["go"]}), "required_skills"),
        (json!({"estimate_points": 5}), "estimate_points"),
        (json!({"tier": 2}), "tier"),
        (json!({"area": "api"}), "area"),
    ] {
        let e = app
            .admin(Method::PATCH, &path, Some(body))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(e["details"], format!("live_lease: {field}"));
    }
    // the same values are no change; priority and text may change
    app.admin(
        Method::PATCH,
        &path,
        Some(json!({"required_skills": ["RUST"], "area": "docs", "priority": 7})),
    )
    .await
    .expect(StatusCode::OK);
    app.admin(Method::PATCH, &path, Some(json!({"max_attempts": 0})))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    app.admin(
        Method::PATCH,
        "/v1/tasks/t_nope",
        Some(json!({"priority": 1})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    let kinds = audit_kinds(&pool, &t).await;
    assert_eq!(kinds.iter().filter(|k| *k == "task_updated").count(), 2);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn browsers_of_the_configured_origins_may_call_the_api(pool: PgPool) {
    let settings = owp_pool::config::Settings {
        cors_origins: vec!["https://pool.example.org".into()],
        ..test_settings()
    };
    let app = spawn_app_with(pool, settings).await;
    let preflight = |origin: &'static str, path: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}{path}", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "PATCH")
            .header(
                "access-control-request-headers",
                "x-admin-token, content-type",
            )
            .send()
    };
    for path in ["/v1/tasks/t_x", "/v1/work", "/v1/workers/w_x/pause"] {
        let ok = preflight("https://pool.example.org", path).await.unwrap();
        assert!(ok.status().is_success(), "{path}: {}", ok.status());
        let h = ok.headers();
        assert_eq!(h["access-control-allow-origin"], "https://pool.example.org");
        let allowed = h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(
            allowed.contains("x-admin-token") && allowed.contains("authorization"),
            "{allowed}"
        );
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PATCH"));
    }
    let refused = preflight("https://evil.example.com", "/v1/tasks")
        .await
        .unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // an actual request carries the header for the allowed origin only
    let get = |origin: &'static str| {
        app.http
            .get(format!("{}/v1/admin/state", app.base))
            .header("origin", origin)
            .header("x-admin-token", ADMIN)
            .send()
    };
    let r = get("https://pool.example.org").await.unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://pool.example.org"
    );
    assert!(get("https://evil.example.com")
        .await
        .unwrap()
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[sqlx::test]
async fn no_origin_is_allowed_by_default_and_the_docs_are_served_from_the_binary(pool: PgPool) {
    let app = spawn_app(pool).await;
    let r = app
        .http
        .request(Method::OPTIONS, format!("{}/v1/tasks", app.base))
        .header("origin", "https://pool.example.org")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let page = app
        .http
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("swagger-ui") && !html.contains("cdn"),
        "{html}"
    );
    let config = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(config.status(), StatusCode::OK);
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    let css = app
        .http
        .get(format!("{}/docs/swagger-ui.css", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
}

/// A rotated or revoked token is refused at once on every worker route of every replica,
/// even right after it worked there: nothing a replica remembers about a token decides
/// alone that it is valid.
#[sqlx::test]
async fn a_revoked_or_rotated_token_is_refused_on_every_worker_route_of_every_replica(
    pool: PgPool,
) {
    let replicas = [spawn_app(pool.clone()).await, spawn_app(pool.clone()).await];
    let a = &replicas[0];
    a.create_repo("acme/r", 5, false).await;
    let t = a.create_task(json!({"repo": "acme/r", "title": "t"})).await;
    let w = a.register("w", &[], 5, 2).await;
    assert_eq!(a.poll(&w).await.len(), 1);
    let routes = |task: &str| {
        vec![
            (Method::GET, "/v1/work".to_string(), None),
            (Method::POST, "/v1/work".to_string(), None),
            (
                Method::POST,
                "/v1/workers/heartbeat".to_string(),
                Some(json!({"status": "working"})),
            ),
            (
                Method::POST,
                format!("/v1/tasks/{task}/status"),
                Some(json!({"status": "in_progress"})),
            ),
            (Method::GET, format!("/v1/tasks/{task}"), None),
            (
                Method::GET,
                format!("/v1/workers/{}/reputation", w.id),
                None,
            ),
            (Method::POST, "/v1/work/offers".to_string(), None),
            (
                Method::POST,
                "/v1/work/offers/o_none/reject".to_string(),
                Some(json!({"reason": "other"})),
            ),
            (
                Method::POST,
                "/v1/work/offers/o_none/accept".to_string(),
                None,
            ),
        ]
    };
    // every route answers the live token on every replica (whatever it answers, not 401)
    for r in &replicas {
        for (method, path, body) in routes(&t) {
            let got = r.as_worker(&w, method.clone(), &path, body).await;
            assert_ne!(
                got.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                got.body
            );
        }
    }
    let rotated = a
        .admin(Method::POST, &format!("/v1/workers/{}/token", w.id), None)
        .await
        .expect(StatusCode::OK);
    let fresh = Worker {
        id: w.id.clone(),
        token: rotated["token"].as_str().unwrap().into(),
    };
    for r in &replicas {
        for (method, path, body) in routes(&t) {
            r.as_worker(&w, method.clone(), &path, body.clone())
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
            let got = r.as_worker(&fresh, method.clone(), &path, body).await;
            assert_ne!(
                got.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                got.body
            );
        }
    }
    a.admin(Method::POST, &format!("/v1/workers/{}/revoke", w.id), None)
        .await
        .expect(StatusCode::OK);
    for r in &replicas {
        for (method, path, body) in routes(&t) {
            r.as_worker(&fresh, method.clone(), &path, body)
                .await
                .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
        }
    }
    assert_invariants(&pool).await;
}
