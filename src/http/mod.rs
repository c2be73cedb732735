//! The HTTP layer: routes, middleware (request ids, tracing, panics, body limit, metrics)
//! and one file per resource group. Handlers stay thin: validate, call the store, map.

pub mod analytics;
pub mod audit;
pub mod audit_export;
pub mod dashboard;
pub mod extract;
pub mod github;
pub mod limits;
pub mod notifications;
pub mod offers;
pub mod openapi;
pub mod ops;
pub mod overview;
pub mod paging;
pub mod repos;
pub mod scope;
pub mod stale_prs;
pub mod tasks;
pub mod work;
pub mod workers;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, Response};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::app::AppContext;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A route's own body limit: enforced, and named in its 413 answer (extract::BodyLimit).
fn route_body_limit(
    max: usize,
) -> ServiceBuilder<
    tower::layer::util::Stack<
        Extension<extract::BodyLimit>,
        tower::layer::util::Stack<DefaultBodyLimit, tower::layer::util::Identity>,
    >,
> {
    ServiceBuilder::new()
        .layer(DefaultBodyLimit::max(max))
        .layer(Extension(extract::BodyLimit(max)))
}

pub fn router(app: AppContext) -> Router {
    let body_limit = app.settings.body_limit;
    let bulk_body_limit = app.settings.bulk_body_limit;
    let webhook_body_limit = app.settings.github.webhook_body_limit;
    let app_cors = app.settings.cors_origins.clone();
    let api = Router::new()
        .route("/v1/workers/register", post(workers::register_worker))
        .route("/v1/workers/heartbeat", post(workers::heartbeat))
        .route("/v1/workers/me", patch(workers::patch_me))
        .route(
            "/v1/work",
            get(work::claim_work).post(work::claim_work_post),
        )
        .route("/v1/work/offers", post(offers::make_offers))
        .route(
            "/v1/work/offers/{offer_id}/accept",
            post(offers::accept_offer),
        )
        .route(
            "/v1/work/offers/{offer_id}/reject",
            post(offers::reject_offer),
        )
        .route(
            "/v1/tasks/{task_id}/status",
            post(tasks::status::report_status),
        )
        .route("/v1/tasks", get(tasks::list_tasks))
        .route(
            "/v1/tasks/{task_id}",
            get(tasks::get_task).patch(tasks::patch_task),
        )
        .route(
            "/v1/tasks/{task_id}/requeue",
            post(tasks::actions::requeue_task),
        )
        .route(
            "/v1/tasks/{task_id}/cancel",
            post(tasks::actions::cancel_task),
        )
        .route(
            "/v1/tasks/{task_id}/approve",
            post(tasks::approval::approve_claim),
        )
        .route(
            "/v1/tasks/{task_id}/deny",
            post(tasks::approval::deny_claim),
        )
        .route("/v1/tasks/requeue", post(tasks::actions::requeue_tasks))
        .route("/v1/tasks/cancel", post(tasks::actions::cancel_tasks))
        .route("/v1/workers", get(workers::list_workers))
        .route("/v1/workers/{worker_id}", get(workers::get_worker))
        .route(
            "/v1/workers/{worker_id}/reputation",
            get(workers::get_reputation),
        )
        .route(
            "/v1/workers/{worker_id}/pause",
            post(workers::actions::pause_worker),
        )
        .route(
            "/v1/workers/{worker_id}/resume",
            post(workers::actions::resume_worker),
        )
        .route(
            "/v1/workers/{worker_id}/revoke",
            post(workers::actions::revoke_worker),
        )
        .route(
            "/v1/workers/{worker_id}/token",
            post(workers::actions::rotate_token),
        )
        .route(
            "/v1/workers/{worker_id}/trust-tier",
            post(workers::actions::set_trust_tier),
        )
        .route("/v1/audit/events", get(audit::list_events))
        .route("/v1/audit/export", get(audit_export::export_events))
        .route(
            "/v1/analytics/repositories/{owner}/{repo}",
            get(analytics::repo_analytics),
        )
        .route(
            "/v1/analytics/repositories/{repo}",
            get(analytics::repo_analytics_by_name),
        )
        .route(
            "/v1/admin/repos",
            post(repos::upsert_repo).get(repos::list_repos),
        )
        // a bulk import is larger than any other body (admin only: the token is checked first)
        .route(
            "/v1/admin/tasks",
            post(tasks::create_tasks).layer(route_body_limit(bulk_body_limit)),
        )
        .route("/v1/admin/state", get(overview::get_state))
        // signed by GitHub, not an admin; its body limit is its own
        .route(
            "/webhooks/github",
            post(github::webhook).layer(route_body_limit(webhook_body_limit)),
        )
        .route("/v1/github/repos/{owner}/{repo}/sync", post(github::sync))
        .route("/v1/admin/github/outbox", get(github::outbox))
        .route(
            "/v1/admin/notifications",
            post(notifications::create_channel).get(notifications::list_channels),
        )
        .route(
            "/v1/admin/notifications/deliveries",
            get(notifications::list_deliveries),
        )
        .route(
            "/v1/admin/notifications/deliveries/{delivery_id}/retry",
            post(notifications::retry_delivery),
        )
        .route(
            "/v1/admin/notifications/{channel_id}",
            delete(notifications::delete_channel),
        )
        .route(
            "/v1/admin/notifications/{channel_id}/test",
            post(notifications::test_channel),
        )
        .route("/v1/admin/state/stream", get(overview::stream_state))
        .route("/v1/admin/stale-prs", get(stale_prs::list_stale_prs))
        .route(
            "/v1/admin/stale-prs/close",
            post(stale_prs::close_stale_prs),
        )
        // the dashboard: the page, its assets, its sign-in
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route(
            "/v1/dashboard/session",
            post(dashboard::sign_in)
                .get(dashboard::current)
                .delete(dashboard::sign_out),
        )
        .route("/v1/admin/throughput", get(dashboard::throughput))
        .route("/v1", get(ops::service_info))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/health", get(ops::health))
        .route("/openapi.json", get(openapi::openapi_json))
        // interactive API docs over /openapi.json, assets served from the binary, with the
        // dashboard's framing and sniffing rules (Swagger UI styles elements inline)
        .merge(
            Router::<AppContext>::from(
                SwaggerUi::new("/docs").config(Config::new(["/openapi.json"])),
            )
            .layer(middleware::map_response(docs_headers)),
        )
        // with OWP_METRICS_PORT set, /metrics lives only there (see metrics_router)
        .merge(match app.settings.metrics_port {
            None => Router::new().route("/metrics", get(ops::metrics)),
            Some(_) => Router::new(),
        })
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { MethodNotAllowed })
        // innermost first: the timeout wraps the handler; the client limits run before it
        .layer(middleware::from_fn_with_state(
            app.clone(),
            limits::request_timeout,
        ))
        .layer(middleware::from_fn_with_state(
            app.clone(),
            limits::limit_clients,
        ))
        .route_layer(middleware::from_fn(track_metrics))
        .layer(Extension(overview::StateFeed::spawn(app.clone())))
        .with_state(app);

    // outermost first: every answer, even a panic's, carries the request id and is traced;
    // CORS answers preflights before any limit or route sees them
    api.layer(cors(&app_cors)).layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(make_span)
                    .on_request(())
                    .on_response(on_response)
                    .on_failure(()),
            )
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(CatchPanicLayer::custom(|_| {
                tracing::error!("handler panicked");
                ApiError::Internal.into_response()
            }))
            .layer(DefaultBodyLimit::max(body_limit)),
    )
}

/// Browser access for `OWP_CORS_ORIGINS` (validated at start): both credentials headers,
/// every method the API uses; none when the list is empty.
fn cors(origins: &[String]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    if origins.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PATCH])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(extract::ADMIN_HEADER),
                HeaderName::from_static(extract::REGISTRATION_HEADER),
                REQUEST_ID,
            ])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    )
}

/// `/docs`: the dashboard's page headers (no framing of "Try it out" with a pasted token);
/// Swagger UI styles elements inline.
async fn docs_headers(resp: axum::response::Response) -> axum::response::Response {
    dashboard::with_page_headers(
        resp,
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
         form-action 'self'",
    )
}

/// A router with only `/metrics`, for the separate metrics listener.
pub fn metrics_router(app: AppContext) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::NotFound("route") })
        .with_state(app)
}

struct MethodNotAllowed;

impl IntoResponse for MethodNotAllowed {
    fn into_response(self) -> axum::response::Response {
        let mut r = ApiError::NotFound("method for this route").into_response();
        *r.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
        r
    }
}

fn make_span(req: &Request) -> Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // no raw path: it can carry ids; no headers: they carry tokens
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id,
        worker_id = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    )
}

fn on_response<B>(resp: &Response<B>, latency: Duration, span: &Span) {
    span.record("status", resp.status().as_u16());
    span.record("latency_ms", latency.as_secs_f64() * 1000.0);
    // one line per request, carrying the span: request id, route, status, latency, worker
    if resp.status().is_server_error() {
        tracing::warn!("request failed");
    } else {
        tracing::info!("request");
    }
}

/// Counts and times every routed request by method, route template and status.
async fn track_metrics(req: Request, next: Next) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let started = Instant::now();
    let resp = next.run(req).await;
    crate::metrics::http_request(
        method.as_str(),
        &route,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}
