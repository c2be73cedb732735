//! The protocol's v0.1 names, each accepted where v0.1 clients send it (docs/PROTOCOL.md,
//! "Compatibility with v0.1"); answers keep the service's own names.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn get_v1_describes_the_service_without_a_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    let info = app
        .call(Method::GET, "/v1", &[], None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(info["name"], "owp-pool");
    assert_eq!(info["protocol_version"], "1");
    assert_eq!(info["compatible_with"], json!(["0.1"]));
    // where it points is served
    let doc = app
        .call(Method::GET, info["openapi"].as_str().unwrap(), &[], None)
        .await
        .expect(StatusCode::OK);
    assert!(
        doc["paths"]["/v1"]["get"].is_object(),
        "the document lists GET /v1"
    );
}

#[sqlx::test]
async fn tier_maintainer_is_core(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("old-client", &[], 5, 1).await;
    let path = format!("/v1/workers/{}/trust-tier", w.id);
    let set = app
        .admin(
            Method::POST,
            &path,
            Some(json!({"tier": "maintainer", "reason": "v0.1 name"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(set["trust_tier"], "core", "{set}");
    let shown = app
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["trust_tier"], "core");
    // any other unknown name is still refused, naming the field
    app.admin(
        Method::POST,
        &path,
        Some(json!({"tier": "owner", "reason": "no such tier"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
}

#[sqlx::test]
async fn analytics_periods_by_their_v01_names(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 5, false).await;
    for (v01, ours) in [
        ("last_7_days", "7d"),
        ("last_30_days", "30d"),
        ("last_90_days", "90d"),
    ] {
        let a = app
            .admin(
                Method::GET,
                &format!("/v1/analytics/repositories/acme/r?period={v01}"),
                None,
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(a["period"], ours, "{v01}: {a}");
    }
    let bad = app
        .admin(
            Method::GET,
            "/v1/analytics/repositories/acme/r?period=last_year",
            None,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(bad["details"].as_str().unwrap().contains("period"), "{bad}");
}

/// The audit feed's events by kind, as `event_type` filters them.
async fn kinds(app: &TestApp, event_type: &str) -> Vec<Value> {
    let page = app
        .admin(
            Method::GET,
            &format!("/v1/audit/events?event_type={event_type}"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    page["events"].as_array().unwrap().clone()
}

#[sqlx::test]
async fn audit_filters_by_v01_event_names(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 5, false).await;
    let w = app.register("w", &[], 5, 2).await;
    let done = app
        .create_task(json!({"repo": "acme/r", "title": "done"}))
        .await;
    let held = app
        .create_task(json!({"repo": "acme/r", "title": "held"}))
        .await;
    assert_eq!(app.poll(&w).await.len(), 2);
    for (task, status) in [
        (&done, "in_progress"),
        (&done, "completed"),
        (&held, "in_progress"),
    ] {
        app.report(&w, task, json!({"status": status}))
            .await
            .expect(StatusCode::OK);
    }
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/trust-tier", w.id),
        Some(json!({"tier": "basic", "reason": "earned"})),
    )
    .await
    .expect(StatusCode::OK);

    let assigned = kinds(&app, "task_assigned").await;
    assert_eq!(assigned.len(), 2, "{assigned:?}");
    assert!(assigned.iter().all(|e| e["event_type"] == "lease_granted"));

    // only the change to completed, not the two to in_progress
    let completed = kinds(&app, "task_completed").await;
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0]["target"], done.as_str());
    assert_eq!(completed[0]["details"]["to_status"], "completed");

    let tiers = kinds(&app, "trust_tier_changed").await;
    assert_eq!(tiers.len(), 1, "{tiers:?}");
    assert_eq!(tiers[0]["event_type"], "worker_trust_tier_changed");
    // the service's own names keep working
    assert_eq!(kinds(&app, "lease_granted").await.len(), 2);
}
