//! The HTTP layer: routes, middleware (request ids, tracing, panics, body limit, metrics)
//! and one file per resource group. Handlers stay thin: validate, call the store, map.

pub mod admin;
pub mod extract;
pub mod limits;
pub mod openapi;
pub mod ops;
pub mod overview;
pub mod stale_prs;
pub mod tasks;
pub mod work;
pub mod workers;

use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, Response};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::app::AppContext;
use crate::error::ApiError;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(app: AppContext) -> Router {
    let body_limit = app.settings.body_limit;
    let api = Router::new()
        .route("/v1/workers/register", post(workers::register_worker))
        .route("/v1/workers/heartbeat", post(workers::heartbeat))
        .route(
            "/v1/work",
            get(work::claim_work).post(work::claim_work_post),
        )
        .route("/v1/tasks/{task_id}/status", post(tasks::report_status))
        .route("/v1/admin/repos", post(admin::upsert_repo))
        .route("/v1/admin/tasks", post(admin::create_tasks))
        .route("/v1/admin/state", get(overview::get_state))
        .route("/v1/admin/state/stream", get(overview::stream_state))
        .route("/v1/admin/stale-prs", get(stale_prs::list_stale_prs))
        .route(
            "/v1/admin/stale-prs/close",
            post(stale_prs::close_stale_prs),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/health", get(ops::health))
        .route("/openapi.json", get(openapi::openapi_json))
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

    // outermost first: every answer, even a panic's, carries the request id and is traced
    api.layer(
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
