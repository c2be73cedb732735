//! Error answers: the PROTOCOL.md format everywhere, and nothing leaked.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn malformed_json_and_wrong_types_are_validation_errors(pool: PgPool) {
    let app = spawn_app(pool).await;
    let raw = |body: &'static str| {
        app.http
            .post(format!("{}/v1/workers/register", app.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in [
        "{",
        "{\"name\": }",
        "{\"name\": \"x\"",
        "{\"name\": nul}",
        "\n",
        "  ",
    ] {
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

#[sqlx::test]
async fn bodies_over_the_limit_get_413(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    // every route but the bulk import: OWP_BODY_LIMIT (64 KiB)
    let big = json!({"repo": "r", "max_open_prs": 3, "pr_url_prefix": "x".repeat(70 * 1024)});
    let e = app
        .admin(Method::POST, "/v1/admin/repos", Some(big))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(
        e["message"].as_str().unwrap().contains("65536 bytes"),
        "{e}"
    );
    // the bulk import: OWP_BULK_BODY_LIMIT (8 MiB), so 1 MiB of tasks goes in...
    let task = |i: usize| json!({"repo": "r", "title": format!("t{i}"), "description": "x".repeat(10_000)});
    let fits: Vec<_> = (0..100).map(task).collect();
    app.admin(Method::POST, "/v1/admin/tasks", Some(json!(fits)))
        .await
        .expect(StatusCode::CREATED);
    // ...and 9 MiB does not, creating nothing
    let over: Vec<_> = (0..900).map(task).collect();
    let e = app
        .admin(Method::POST, "/v1/admin/tasks", Some(json!(over)))
        .await
        .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // the answer names the bulk route's own limit
    assert!(
        e["message"].as_str().unwrap().contains("8388608 bytes"),
        "{e}"
    );
    let n: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 100);
}

#[sqlx::test]
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

#[sqlx::test]
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

#[sqlx::test]
async fn bodies_follow_the_openapi_document_exactly(pool: PgPool) {
    // findings of schemathesis runs against /openapi.json, kept as regressions
    let app = spawn_app(pool).await;
    // 3.0 is an integer to JSON Schema; 3.5 is not
    let w = app
        .call(
            Method::POST,
            "/v1/workers/register",
            &[],
            Some(json!({"name": "n", "capacity_points": 3.0})),
        )
        .await
        .expect(StatusCode::CREATED);
    let e = app
        .call(
            Method::POST,
            "/v1/workers/register",
            &[],
            Some(json!({"name": "n", "capacity_points": 3.5})),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .starts_with("capacity_points:"),
        "{e}"
    );
    // an array is not an object, even where every field is optional
    let auth = format!("Bearer {}", w["token"].as_str().unwrap());
    app.call(
        Method::POST,
        "/v1/workers/heartbeat",
        &[("authorization", &auth)],
        Some(json!([null, null])),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    // no body and a null body are both a bare heartbeat
    app.call(
        Method::POST,
        "/v1/workers/heartbeat",
        &[("authorization", &auth)],
        Some(serde_json::Value::Null),
    )
    .await
    .expect(StatusCode::OK);
    // lengths count as sent, and blank is empty
    app.call(
        Method::POST,
        "/v1/workers/register",
        &[],
        Some(json!({"name": "   "})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    app.call(
        Method::POST,
        "/v1/workers/register",
        &[],
        Some(json!({"name": format!(" {}", "n".repeat(120))})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
}

#[sqlx::test]
async fn nul_characters_are_a_validation_error_not_a_crash(pool: PgPool) {
    // found by schemathesis: PostgreSQL text and jsonb cannot hold \u0000
    let app = spawn_app(pool).await;
    app.create_repo("r", 3, true).await;
    let bad_title = json!([{"repo": "r", "title": "a\u{0}b"}]);
    let e = app
        .admin(Method::POST, "/v1/admin/tasks", Some(bad_title))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"].as_str().unwrap().starts_with("[0].title"),
        "{e}"
    );
    let w = app.register("w", &[], 5, 2).await;
    let t = app.create_task(json!({"repo": "r", "title": "t"})).await;
    app.poll(&w).await;
    // free-form JSON reaches the database's own check, still a 400
    let bad_extra = json!({"status": "in_progress", "artifact": {"extra": {"k": "v\u{0}"}}});
    app.report(&w, &t, bad_extra)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    // no task id holds one
    app.report(&w, "t_\u{0}", json!({"status": "in_progress"}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // a lease id is compared, never stored: a strange one is simply not the current lease
    let bad_lease = json!({"status": "in_progress", "lease_id": "l_\u{0}"});
    let e = app
        .report(&w, &t, bad_lease)
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    assert_eq!(app.task_row(&t).await.0, "leased", "nothing changed");
}
