//! Operations endpoints and the OpenAPI document.

use reqwest::{Method, StatusCode};
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn health_endpoints_report_liveness_and_readiness(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_eq!(
        app.call(Method::GET, "/healthz", &[], None)
            .await
            .expect(StatusCode::OK)["status"],
        "ok"
    );
    assert_eq!(
        app.call(Method::GET, "/readyz", &[], None)
            .await
            .expect(StatusCode::OK)["status"],
        "ready"
    );
    assert_eq!(
        app.call(Method::GET, "/health", &[], None)
            .await
            .expect(StatusCode::OK)["status"],
        "ready"
    );
    // a schema behind this binary's migrations is not ready
    sqlx::query("delete from _sqlx_migrations")
        .execute(&app.pool)
        .await
        .unwrap();
    app.call(Method::GET, "/readyz", &[], None)
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert_eq!(
        app.call(Method::GET, "/healthz", &[], None)
            .await
            .expect(StatusCode::OK)["status"],
        "ok"
    );
}

#[sqlx::test]
async fn metrics_are_prometheus_text_with_route_templates(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("w", &[], 5, 2).await;
    app.poll(&w).await;
    app.report(&w, "t_nothing", serde_json::json!({"status": "completed"}))
        .await;
    let resp = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("# HELP owp_http_requests_total"), "{text}");
    assert!(
        text.contains(r#"route="/v1/tasks/{task_id}/status""#),
        "route templates, never raw paths"
    );
    assert!(!text.contains("t_nothing"), "no ids in labels");
    assert!(text.contains("owp_leases_claimed_total"));
}

#[sqlx::test]
async fn the_openapi_document_describes_every_route(pool: PgPool) {
    let app = spawn_app(pool).await;
    let doc = app
        .call(Method::GET, "/openapi.json", &[], None)
        .await
        .expect(StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/workers/register",
        "/v1/workers/heartbeat",
        "/v1/work",
        "/v1/tasks/{task_id}/status",
        "/v1/admin/repos",
        "/v1/admin/tasks",
        "/v1/admin/state",
        "/v1/admin/state/stream",
        "/v1/admin/stale-prs",
        "/v1/admin/stale-prs/close",
        "/v1/tasks",
        "/v1/tasks/{task_id}",
        "/v1/tasks/{task_id}/requeue",
        "/v1/tasks/{task_id}/cancel",
        "/v1/tasks/requeue",
        "/v1/tasks/cancel",
        "/v1/workers",
        "/v1/workers/{worker_id}",
        "/v1/workers/{worker_id}/pause",
        "/v1/workers/{worker_id}/resume",
        "/v1/workers/{worker_id}/revoke",
        "/v1/workers/{worker_id}/token",
        "/v1/workers/{worker_id}/trust-tier",
        "/v1/workers/{worker_id}/reputation",
        "/v1/work/offers",
        "/v1/work/offers/{offer_id}/accept",
        "/v1/work/offers/{offer_id}/reject",
        "/v1/analytics/repositories/{owner}/{repo}",
        "/v1/analytics/repositories/{repo}",
        "/v1/audit/events",
        "/healthz",
        "/readyz",
        "/health",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // the trust layer's fields
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("TaskRequest", "min_reputation"),
        ("TaskPatch", "min_reputation"),
        ("TaskView", "min_reputation"),
        ("StatusRequest", "quality"),
        ("StateResponse", "tasks_offered"),
        ("TaskDetail", "offer_rejections"),
        ("Reputation", "reputation_score"),
        ("RepoMetrics", "bottlenecks"),
        ("OfferView", "expires_at"),
    ] {
        let props = &schemas[schema]["properties"];
        let all_of = schemas[schema]["allOf"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let found = props.get(field).is_some()
            || all_of.iter().any(|s| s["properties"].get(field).is_some());
        assert!(found, "{schema}.{field} missing: {}", schemas[schema]);
    }
    // any route may meet a per-client limit or the request timeout
    let heartbeat = &doc["paths"]["/v1/workers/heartbeat"]["post"]["responses"];
    assert!(heartbeat.get("429").is_some() && heartbeat.get("503").is_some());
    assert!(
        doc["paths"]["/v1/work"].get("get").is_some()
            && doc["paths"]["/v1/work"].get("post").is_some()
    );
    assert!(
        doc["paths"]["/v1/admin/repos"].get("get").is_some()
            && doc["paths"]["/v1/admin/repos"].get("post").is_some()
    );
    assert!(doc["components"]["securitySchemes"].get("worker").is_some());
    assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
    // hand-written schemas (SkillTag, ReportedStatus) must be registered, not left dangling
    let text = doc.to_string();
    for r in text.split("#/components/schemas/").skip(1) {
        let name: String = r
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        assert!(
            doc["components"]["schemas"].get(&name).is_some(),
            "dangling $ref to {name}"
        );
    }
    assert!(
        doc["components"]["schemas"]["ReportedStatus"]["enum"]
            .as_array()
            .unwrap()
            .len()
            == 10,
        "every status a report may name"
    );
}
