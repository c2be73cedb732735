//! The OpenAPI 3.1 document, generated from the handlers' and types' annotations.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    analytics, audit, audit_export, dashboard, github, notifications, offers, ops, overview, repos,
    stale_prs, tasks, work, workers,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "OWP Pool", description = "The Open Work Protocol v1: a capacity-aware task scheduler for independent contributors. \
Rules beyond the schemas: strings must not contain NUL (U+0000); `pr_url` (or `artifact.pr_url`) is required \
with status `pr_opened`; unknown request fields are ignored; every non-2xx answer is an ErrorBody."),
    paths(
        workers::register_worker, workers::heartbeat, workers::patch_me,
        work::claim_work, work::claim_work_post,
        offers::make_offers, offers::accept_offer, offers::reject_offer,
        tasks::status::report_status,
        repos::upsert_repo, tasks::create_tasks, overview::get_state, overview::stream_state,
        stale_prs::list_stale_prs, stale_prs::close_stale_prs,
        tasks::list_tasks, tasks::get_task, workers::list_workers, workers::get_worker,
        repos::list_repos, audit::list_events, audit_export::export_events,
        tasks::actions::requeue_task, tasks::actions::cancel_task, tasks::actions::requeue_tasks, tasks::actions::cancel_tasks,
        tasks::approval::approve_claim, tasks::approval::deny_claim,
        tasks::patch_task, workers::actions::pause_worker, workers::actions::resume_worker, workers::actions::revoke_worker, workers::actions::rotate_token,
        workers::actions::set_trust_tier, workers::get_reputation, analytics::repo_analytics,
        analytics::repo_analytics_by_name, github::webhook, github::sync, github::outbox,
        notifications::create_channel, notifications::list_channels, notifications::delete_channel,
        notifications::test_channel, notifications::list_deliveries, notifications::retry_delivery,
        dashboard::sign_in, dashboard::current, dashboard::sign_out, dashboard::throughput,
        ops::service_info, ops::healthz, ops::readyz, ops::health, ops::metrics, openapi_json,
    ),
    components(schemas(crate::wire::ErrorBody, crate::wire::admin::TasksCreated)),
    modifiers(&Security),
    tags((name = "workers"), (name = "work"), (name = "tasks"), (name = "admin"), (name = "github"), (name = "notifications"), (name = "dashboard"), (name = "operations"))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "worker",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "admin",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Admin-Token"))),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 document")))]
pub async fn openapi_json() -> Json<serde_json::Value> {
    Json(document())
}

/// The document, with the rules utoipa cannot state added as JSON Schema.
pub fn document() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    // `pr_opened` needs a PR link, top-level or in the artifact (JSON Schema `if`/`then`)
    if let Some(report) = doc.pointer_mut("/components/schemas/StatusRequest") {
        let link = serde_json::json!({"type": "string"});
        report["if"] = serde_json::json!({
            "properties": {"status": {"const": "pr_opened"}}, "required": ["status"]
        });
        report["then"] = serde_json::json!({"anyOf": [
            {"properties": {"pr_url": link}, "required": ["pr_url"]},
            {"properties": {"artifact": {"type": "object", "properties": {"pr_url": link},
                                         "required": ["pr_url"]}},
             "required": ["artifact"]},
        ]});
    }
    // every route may meet a per-client limit (429) and the request timeout (503)
    let error = |what: &str| {
        serde_json::json!({
            "description": what,
            "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
        })
    };
    if let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for op in paths
            .values_mut()
            .filter_map(|p| p.as_object_mut())
            .flat_map(|p| p.values_mut())
        {
            let has_body = op.get("requestBody").is_some();
            if let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) {
                if has_body {
                    responses
                        .entry("413")
                        .or_insert_with(|| error("payload_too_large: body over OWP_BODY_LIMIT"));
                }
                responses
                    .entry("429")
                    .or_insert_with(|| error("rate_limited: over a per-client limit"));
                responses.entry("503").or_insert_with(|| {
                    error("unavailable: database unreachable, request timeout, or a replica limit")
                });
            }
        }
    }
    doc
}
