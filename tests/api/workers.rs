//! Registration and heartbeats.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn registration_returns_a_token_once_and_keeps_only_its_digest(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body = app
        .call(Method::POST, "/v1/workers/register", &[],
              Some(json!({"name": "alice", "github_handle": "alice-dev", "skills": [" Rust", "rust", "SQL"]})))
        .await
        .expect(StatusCode::CREATED);
    let id = body["worker_id"].as_str().unwrap();
    let token = body["token"].as_str().unwrap();
    assert!(id.starts_with("w_"));
    assert!(token.len() >= 22, "at least 128 bits, URL-safe");
    assert_eq!(body["heartbeat_interval_seconds"], 30);
    assert_eq!(body["poll_interval_seconds"], 10);
    assert_eq!(body["lease_ttl_seconds"], 14400);
    assert_eq!(body["heartbeat_timeout_seconds"], 300);

    let (skills, cap, max, digest): (Vec<String>, i32, i32, Vec<u8>) = sqlx::query_as(
        "select skills, capacity_points, max_concurrent_tasks, token_digest from workers where id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(skills, ["rust", "sql"]);
    assert_eq!((cap, max), (5, 2), "defaults");
    assert_eq!(digest, owp_pool::auth::digest(token).to_vec());
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from workers where token_digest::text like '%' || $1 || '%'",
    )
    .bind(token)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 0, "the token itself is never stored");
    assert_eq!(
        audit_kinds_for_worker(&app.pool, id).await,
        ["worker_registered"]
    );
}

async fn audit_kinds_for_worker(pool: &PgPool, worker: &str) -> Vec<String> {
    sqlx::query_scalar("select kind from audit_events where worker_id = $1 order by id")
        .bind(worker)
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn registration_rejects_bad_fields_naming_them(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cases = [
        (json!({}), "name"),
        (json!({"name": ""}), "name"),
        (json!({"name": "x".repeat(121)}), "name"),
        (
            json!({"name": "a", "skills": ["ok", "x".repeat(51)]}),
            "skills[1]",
        ),
        (json!({"name": "a", "skills": "rust"}), "skills"),
        (
            json!({"name": "a", "capacity_points": 0}),
            "capacity_points",
        ),
        (
            json!({"name": "a", "capacity_points": 1001}),
            "capacity_points",
        ),
        (
            json!({"name": "a", "capacity_points": "five"}),
            "capacity_points",
        ),
        (
            json!({"name": "a", "max_concurrent_tasks": 101}),
            "max_concurrent_tasks",
        ),
        (
            json!({"name": "a", "github_handle": "-bad-"}),
            "github_handle",
        ),
    ];
    for (body, field) in cases {
        let err = app
            .call(
                Method::POST,
                "/v1/workers/register",
                &[],
                Some(body.clone()),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        let details = err["details"].as_str().unwrap();
        assert!(details.contains(field), "{body} -> {details}");
    }
    let n: i64 = sqlx::query_scalar("select count(*) from workers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing half-written");
}

#[sqlx::test]
async fn registration_gate_needs_the_registration_token(pool: PgPool) {
    let state = owp_pool::app::AppContext::new(
        pool,
        test_settings(),
        owp_pool::auth::TokenSet::new([ADMIN]),
        owp_pool::auth::Registration::Token(owp_pool::auth::TokenSet::new(["let-me-in"])),
    );
    let app = spawn_ctx(state).await;
    let body = json!({"name": "gated"});
    app.call(
        Method::POST,
        "/v1/workers/register",
        &[],
        Some(body.clone()),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    app.call(
        Method::POST,
        "/v1/workers/register",
        &[("x-registration-token", "nope")],
        Some(body.clone()),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    app.call(
        Method::POST,
        "/v1/workers/register",
        &[("x-registration-token", "let-me-in")],
        Some(body),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[sqlx::test]
async fn heartbeat_marks_the_worker_online_and_counts_its_leases(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("hb", &[], 5, 2).await;
    sqlx::query("update workers set online = false, last_heartbeat = now() - interval '1 hour' where id = $1")
        .bind(&w.id)
        .execute(&app.pool)
        .await
        .unwrap();
    assert_eq!(app.state().await["workers_online"], 0);
    let body = app
        .as_worker(
            &w,
            Method::POST,
            "/v1/workers/heartbeat",
            Some(json!({"status": "working", "note": "on it"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["ok"], true);
    assert_eq!(body["worker_id"], w.id.as_str());
    assert_eq!(body["active_leases"], 0);
    assert!(body["server_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(app.state().await["workers_online"], 1);

    // a bare POST is an idle heartbeat
    let bare = app
        .as_worker(&w, Method::POST, "/v1/workers/heartbeat", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(bare["ok"], true);
    let status: String = sqlx::query_scalar("select status from workers where id = $1")
        .bind(&w.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "idle");

    app.as_worker(
        &w,
        Method::POST,
        "/v1/workers/heartbeat",
        Some(json!({"status": "sleeping"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    app.as_worker(
        &w,
        Method::POST,
        "/v1/workers/heartbeat",
        Some(json!({"note": "n".repeat(501)})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
}

#[sqlx::test]
async fn worker_routes_need_a_valid_bearer_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    for auth in [
        None,
        Some("Bearer nope"),
        Some("Basic abc"),
        Some("Bearer "),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", *a)).collect();
        app.call(
            Method::POST,
            "/v1/workers/heartbeat",
            &headers,
            Some(json!({})),
        )
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
        app.call(Method::GET, "/v1/work", &headers, None)
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    }
    // the admin token is not a worker token
    app.call(
        Method::GET,
        "/v1/work",
        &[("authorization", &format!("Bearer {ADMIN}"))],
        None,
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
}

#[sqlx::test]
async fn registration_is_closed_unless_opened_or_gated(pool: PgPool) {
    let closed = owp_pool::app::AppContext::new(
        pool,
        test_settings(),
        owp_pool::auth::TokenSet::new([ADMIN]),
        owp_pool::auth::Registration::Closed,
    );
    let app = spawn_ctx(closed).await;
    let e = app
        .call(
            Method::POST,
            "/v1/workers/register",
            &[("x-registration-token", "anything")],
            Some(json!({"name": "stranger"})),
        )
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let suggestion = e["suggestion"].as_str().unwrap();
    assert!(
        suggestion.contains("OWP_REGISTRATION_TOKEN")
            && suggestion.contains("OWP_OPEN_REGISTRATION"),
        "{suggestion}"
    );
    let n: i64 = sqlx::query_scalar("select count(*) from workers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

/// The real binary: closed by default and says so at start; `--dev` opens registration.
#[sqlx::test]
async fn the_server_starts_with_registration_closed_and_dev_opens_it(
    _o: sqlx::postgres::PgPoolOptions,
    conn: sqlx::postgres::PgConnectOptions,
) {
    use crate::support::replicas::{database_url, start_replica, wait_ready};
    let url = database_url(&conn);
    let http = reqwest::Client::new();
    let register = |base: String| {
        let http = http.clone();
        async move {
            http.post(format!("{base}/v1/workers/register"))
                .json(&json!({"name": "w"}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let closed = start_replica(&url, "closed", &[("OWP_OPEN_REGISTRATION", "false")]);
    wait_ready(&http, &closed).await;
    assert_eq!(register(closed.base.clone()).await, StatusCode::FORBIDDEN);
    let log = closed.log();
    assert!(
        log.contains("worker registration") && log.contains("closed"),
        "{log}"
    );

    let dev = start_replica(
        &url,
        "dev",
        &[("OWP_OPEN_REGISTRATION", "false"), ("OWP_DEV", "true")],
    );
    wait_ready(&http, &dev).await;
    assert_eq!(register(dev.base.clone()).await, StatusCode::CREATED);
    assert!(dev.log().contains("open"), "{}", dev.log());
}

/// Many heartbeats of one worker at once, alternating statuses, after it was offline: one
/// `worker_online` event, and the `worker_status_changed` events form an unbroken chain
/// (each starts where the previous ended) that ends at the worker's status.
#[sqlx::test]
async fn concurrent_heartbeats_audit_each_change_exactly_once(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("hb", &[], 5, 2).await;
    sqlx::query("update workers set online = false where id = $1")
        .bind(&w.id)
        .execute(&app.pool)
        .await
        .unwrap();
    let beats = (0..40).map(|i| {
        let (app, w) = (&app, &w);
        async move {
            let status = if i % 2 == 0 { "working" } else { "idle" };
            app.as_worker(
                w,
                Method::POST,
                "/v1/workers/heartbeat",
                Some(json!({ "status": status })),
            )
            .await
            .expect(StatusCode::OK);
        }
    });
    futures::future::join_all(beats).await;
    let online: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where kind = 'worker_online' and worker_id = $1",
    )
    .bind(&w.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(online, 1, "back online once");
    let chain: Vec<(String, String)> = sqlx::query_as(
        "select from_status, to_status from audit_events
         where kind = 'worker_status_changed' and worker_id = $1 order by id",
    )
    .bind(&w.id)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let mut at = "idle".to_string();
    for (from, to) in &chain {
        assert_eq!(
            from, &at,
            "a change audited from a status the worker was not in: {chain:?}"
        );
        at = to.clone();
    }
    let now: String = sqlx::query_scalar("select status from workers where id = $1")
        .bind(&w.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(now, at, "the last audited change is the worker's status");
    assert_invariants(&app.pool).await;
}
