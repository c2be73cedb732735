//! Operations endpoints: liveness, readiness, metrics.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;

use crate::app::AppContext;
use crate::error::ApiError;
use crate::store;
use crate::wire::overview::{HealthResponse, ServiceInfo};
use crate::wire::ErrorBody;

/// How long readiness waits for the database before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Service information (v0.1's `GET /v1`): name, version, protocol, where the document
/// is. Needs no token and never touches the database.
#[utoipa::path(get, path = "/v1", tag = "operations", responses((status = 200, body = ServiceInfo)))]
pub async fn service_info() -> Json<ServiceInfo> {
    Json(ServiceInfo {
        name: "owp-pool".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol_version: "1".into(),
        compatible_with: vec!["0.1".into()],
        openapi: "/openapi.json".into(),
        dashboard: "/".into(),
    })
}

/// Liveness: the process answers. Never touches the database.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = HealthResponse)))]
pub async fn healthz() -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok".into(),
    })
}

/// Readiness: the database answers in time and every migration is applied.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
pub async fn readyz(State(app): State<AppContext>) -> Result<Json<HealthResponse>, ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, store::migrations_current(&app.pool)).await {
        Ok(Ok(true)) => Ok(Json(HealthResponse {
            status: "ready".into(),
        })),
        Ok(Ok(false)) => {
            tracing::warn!("not ready: migrations pending");
            Err(ApiError::Unavailable)
        }
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err(ApiError::Unavailable),
    }
}

/// OWP v0.1 name of readiness.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, body = HealthResponse), (status = 503, body = ErrorBody)))]
pub async fn health(state: State<AppContext>) -> Result<Json<HealthResponse>, ApiError> {
    readyz(state).await
}

/// Prometheus text format. Never touches the database: the pool-wide gauges are refreshed
/// on a timer (`scheduler::pool_gauges`).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(State(app): State<AppContext>) -> impl IntoResponse {
    crate::metrics::process_gauges(
        app.pool.size(),
        app.pool.num_idle(),
        app.pool.options().get_max_connections(),
        app.is_leader.load(std::sync::atomic::Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(),
    )
}
