//! Claiming: eligibility, order, capacity, budgets, areas, and the shape of a lease.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn a_lease_carries_every_protocol_field(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/w", 3, true).await;
    let t = app
        .create_task(
            json!({"repo": "acme/w", "title": "T", "description": "D", "required_skills": ["rust"],
                            "estimate_points": 2, "priority": 7, "area": "docs", "tier": 0}),
        )
        .await;
    let w = app.register("w", &["RUST"], 5, 2).await;
    let leases = app.poll(&w).await;
    assert_eq!(leases.len(), 1);
    let l = &leases[0];
    assert_eq!(l["task_id"], t.as_str());
    assert!(l["lease_id"].as_str().unwrap().starts_with("l_"));
    assert_eq!(l["repo"], "acme/w");
    assert_eq!(l["title"], "T");
    assert_eq!(l["description"], "D");
    assert_eq!(l["estimate_points"], 2);
    assert_eq!(l["priority"], 7);
    assert_eq!(l["area"], "docs");
    assert_eq!(l["tier"], 0);
    assert_eq!(l["required_skills"], json!(["rust"]));
    assert_eq!(l["status"], "leased");
    assert_eq!(l["attempt"], 0);
    let expires =
        chrono::DateTime::parse_from_rfc3339(l["lease_expires_at"].as_str().unwrap()).unwrap();
    let ttl = expires
        .signed_duration_since(chrono::Utc::now())
        .num_seconds();
    assert!(
        (14_000..=14_400).contains(&ttl),
        "lease TTL is 4h, got {ttl}s"
    );
    assert_eq!(
        audit_kinds(&app.pool, &t).await,
        ["task_created", "lease_granted"]
    );
    // POST is the same call, and a repeated poll returns the same lease (nothing lost, nothing new)
    let again = app
        .as_worker(&w, Method::POST, "/v1/work", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(again["leases"].as_array().unwrap().len(), 1);
    assert_eq!(again["leases"][0]["lease_id"], l["lease_id"]);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn only_tasks_whose_skills_the_worker_has_are_claimed(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 10, false).await;
    let rust = app
        .create_task(json!({"repo": "r", "title": "a", "required_skills": ["rust"]}))
        .await;
    let both = app
        .create_task(json!({"repo": "r", "title": "b", "required_skills": ["rust", "sql"]}))
        .await;
    let none = app.create_task(json!({"repo": "r", "title": "c"})).await;
    let w = app.register("w", &["Rust"], 100, 10).await;
    assert_eq!(ids(&app.poll(&w).await), {
        let mut v = vec![rust, none];
        v.sort();
        v
    });
    let w2 = app.register("w2", &["sql", "rust", "go"], 100, 10).await;
    assert_eq!(ids(&app.poll(&w2).await), vec![both]);
}

#[sqlx::test]
async fn claims_respect_points_and_lease_count(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 100, false).await;
    app.create_tasks(
        (0..10)
            .map(|i| json!({"repo": "r", "title": format!("{i}"), "estimate_points": 3}))
            .collect(),
    )
    .await;
    let w = app.register("w", &[], 7, 5).await;
    assert_eq!(app.poll(&w).await.len(), 2, "3 + 3 <= 7 < 9");
    assert_eq!(app.poll(&w).await.len(), 2, "still full");
    let w2 = app.register("w2", &[], 100, 3).await;
    assert_eq!(app.poll(&w2).await.len(), 3, "max_concurrent_tasks");
    // a task larger than the worker's whole capacity is never claimed by it
    let big = app
        .create_task(json!({"repo": "r", "title": "big", "estimate_points": 8, "priority": 99}))
        .await;
    let w3 = app.register("w3", &[], 7, 5).await;
    let got = app.poll(&w3).await;
    assert!(!ids(&got).contains(&big));
    assert_eq!(got.len(), 2);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn highest_priority_first_then_oldest(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 100, false).await;
    let low = app
        .create_task(json!({"repo": "r", "title": "low", "priority": 1}))
        .await;
    let old = app
        .create_task(json!({"repo": "r", "title": "old", "priority": 5}))
        .await;
    let new = app
        .create_task(json!({"repo": "r", "title": "new", "priority": 5}))
        .await;
    let high = app
        .create_task(json!({"repo": "r", "title": "high", "priority": 50}))
        .await;
    let w = app.register("w", &[], 100, 100).await;
    let mut order = vec![];
    for _ in 0..4 {
        let leases = app.poll_query(&w, "?max=1").await;
        let mine = ids(&leases);
        let newest = mine.iter().find(|t| !order.contains(*t)).unwrap().clone();
        order.push(newest);
    }
    assert_eq!(order, [high, old, new, low]);
}

#[sqlx::test]
async fn max_caps_new_claims_and_zero_only_lists(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 100, false).await;
    app.create_tasks(
        (0..5)
            .map(|i| json!({"repo": "r", "title": format!("{i}")}))
            .collect(),
    )
    .await;
    let w = app.register("w", &[], 100, 10).await;
    assert_eq!(app.poll_query(&w, "?max=0").await.len(), 0);
    assert_eq!(app.poll_query(&w, "?max=2").await.len(), 2);
    assert_eq!(
        app.poll_query(&w, "?max=0").await.len(),
        2,
        "old leases are always returned"
    );
    assert_eq!(app.poll_query(&w, "?max=2&wait=0").await.len(), 4);
    for bad in ["?max=-1", "?max=101", "?max=abc", "?wait=61", "?wait=-2"] {
        app.as_worker(&w, Method::GET, &format!("/v1/work{bad}"), None)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    }
}

#[sqlx::test]
async fn a_repo_never_gets_more_open_tasks_than_its_budget(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("small", 2, false).await;
    app.create_repo("paused", 0, false).await;
    app.create_tasks(
        (0..5)
            .map(|i| json!({"repo": "small", "title": format!("{i}")}))
            .collect(),
    )
    .await;
    app.create_task(json!({"repo": "paused", "title": "never", "priority": 1000}))
        .await;
    let a = app.register("a", &[], 100, 10).await;
    let b = app.register("b", &[], 100, 10).await;
    let la = app.poll(&a).await;
    assert_eq!(la.len(), 2);
    assert!(
        la.iter().all(|l| l["repo"] == "small"),
        "a paused repo (budget 0) gives nothing"
    );
    assert_eq!(app.poll(&b).await.len(), 0);
    // a PR keeps its slot; completing frees it
    let t0 = la[0]["task_id"].as_str().unwrap();
    let t1 = la[1]["task_id"].as_str().unwrap();
    app.report(
        &a,
        t0,
        json!({"status": "pr_opened", "pr_url": "https://example.com/pr/1"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(app.poll(&b).await.len(), 0, "pr_opened holds the repo slot");
    app.report(&a, t1, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.poll(&b).await.len(), 1);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn area_locks_allow_one_open_task_per_area(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("locked", 10, true).await;
    app.create_repo("free", 10, false).await;
    let a1 = app
        .create_task(json!({"repo": "locked", "title": "a1", "area": "auth", "priority": 3}))
        .await;
    app.create_task(json!({"repo": "locked", "title": "a2", "area": "auth", "priority": 2}))
        .await;
    let other = app
        .create_task(json!({"repo": "locked", "title": "b", "area": "billing", "priority": 1}))
        .await;
    app.create_tasks((0..2).map(|i| json!({"repo": "free", "title": format!("f{i}"), "area": "auth", "priority": 0})).collect()).await;
    let w = app.register("w", &[], 100, 10).await;
    let got = app.poll(&w).await;
    let mine = ids(&got);
    assert_eq!(
        got.len(),
        4,
        "a1, b and both tasks of the repo without locks: {mine:?}"
    );
    assert!(mine.contains(&a1) && mine.contains(&other));
    // the lock outlives the lease while a PR is open
    app.report(
        &w,
        &a1,
        json!({"status": "pr_opened", "pr_url": "https://example.com/pr/2"}),
    )
    .await
    .expect(StatusCode::OK);
    let w2 = app.register("w2", &[], 100, 10).await;
    assert_eq!(app.poll(&w2).await.len(), 0);
    app.report(&w, &a1, json!({"status": "merged"}))
        .await
        .expect(StatusCode::OK);
    let got = app.poll(&w2).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["title"], "a2");
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn paused_workers_keep_their_leases_but_get_no_new_work(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 100, false).await;
    app.create_tasks(
        (0..4)
            .map(|i| json!({"repo": "r", "title": format!("{i}")}))
            .collect(),
    )
    .await;
    let w = app.register("w", &[], 100, 10).await;
    assert_eq!(app.poll_query(&w, "?max=1").await.len(), 1);
    app.as_worker(
        &w,
        Method::POST,
        "/v1/workers/heartbeat",
        Some(json!({"status": "paused"})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(app.poll(&w).await.len(), 1, "kept, nothing new");
    app.as_worker(
        &w,
        Method::POST,
        "/v1/workers/heartbeat",
        Some(json!({"status": "working"})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(app.poll(&w).await.len(), 4);
}

#[sqlx::test]
async fn higher_tier_tasks_wait_for_trusted_workers(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 100, false).await;
    let tier2 = app
        .create_task(json!({"repo": "r", "title": "core", "tier": 2, "priority": 99}))
        .await;
    let tier0 = app.create_task(json!({"repo": "r", "title": "docs"})).await;
    let w = app.register("w", &[], 100, 10).await;
    assert_eq!(ids(&app.poll(&w).await), vec![tier0]);
    let trusted = app.register("trusted", &[], 100, 10).await;
    sqlx::query("update workers set trust_tier = 2 where id = $1")
        .bind(&trusted.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(ids(&app.poll(&trusted).await), vec![tier2]);
}
