//! Error answers: the PROTOCOL.md format everywhere, and nothing leaked.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test(migrator = "owp_pool::store::MIGRATOR")]
async fn malformed_json_and_wrong_types_are_validation_errors(pool: PgPool) {
    let app = spawn_app(pool).await;
    let raw = |body: &'static str| {
        app.http
            .post(format!("{}/v1/workers/register", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in ["{", "{\"name\": }", "{\"name\": \"x\"", "nul"] {
        let r = raw(body).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let b: serde_json::Value = r.json().await.unwrap();
        assert_eq!(b["code"], "validation_error");
        assert!(
            b["details"]
                .as_str()
                .unwrap()
                .starts_with("body: malformed JSON"),
            "{body}: {b}"
        );
    }
    let e = app
        .call(
            Method::POST,
            "/v1/workers/register",
            &[],
            Some(json!({"name": ["x"]})),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .starts_with("name: invalid type"),
        "{e}"
    );
    // unknown fields are ignored (clients of several versions coexist)
    app.call(
        Method::POST,
        "/v1/workers/register",
        &[],
        Some(json!({"name": "x", "future_field": 1})),
    )
    .await
    .expect(StatusCode::CREATED);
}

#[sqlx::test(migrator = "owp_pool::store::MIGRATOR")]
async fn bodies_over_the_limit_get_413(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    let big = json!({"repo": "r", "title": "t", "description": "x".repeat(70 * 1024)});
    app.admin(Method::POST, "/v1/admin/tasks", Some(big))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let n: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[sqlx::test(migrator = "owp_pool::store::MIGRATOR")]
async fn unknown_routes_and_methods_answer_in_the_error_format(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.call(Method::GET, "/v1/nope", &[], None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let e = app.call(Method::DELETE, "/v1/work", &[], None).await;
    assert_eq!(e.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(e.body["code"].is_string());
    let ok = app.call(Method::GET, "/healthz", &[], None).await;
    assert!(
        ok.request_id.is_some_and(|id| id.len() >= 32),
        "every answer carries x-request-id"
    );
}

#[sqlx::test(migrator = "owp_pool::store::MIGRATOR")]
async fn internal_errors_hide_their_cause_and_return_the_request_id(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("w", &[], 5, 2).await;
    // break the schema under the running app: the next write fails inside the database
    sqlx::query("alter table audit_events rename to audit_events_gone")
        .execute(&app.pool)
        .await
        .unwrap();
    let e = app
        .as_worker(
            &w,
            Method::POST,
            "/v1/workers/heartbeat",
            Some(json!({"status": "paused"})),
        )
        .await
        .expect_error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error");
    let text = e.to_string();
    for leak in [
        "audit_events",
        "relation",
        "select",
        "insert",
        "update",
        w.token.as_str(),
    ] {
        assert!(
            !text.to_lowercase().contains(leak),
            "leaked {leak:?}: {text}"
        );
    }
    // the heartbeat's transaction rolled back whole: the status did not change without its event
    let status: String = sqlx::query_scalar("select status from workers where id = $1")
        .bind(&w.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "idle");
}
