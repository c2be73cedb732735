//! Middleware that applies the per-client limits (`crate::limits`) and the request
//! timeout before a handler, and so before any database work.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::extract::{bearer, header_str, session_cookie, ADMIN_HEADER};
use crate::app::AppContext;
use crate::auth;
use crate::error::ApiError;
use crate::limits::{Refused, TokenKey};

/// Routes that may legitimately run long: they end by themselves (streams at shutdown,
/// long polls after `wait`), so the request timeout does not cut them.
const STREAM_ROUTE: &str = "/v1/admin/state/stream";
const WORK_ROUTE: &str = "/v1/work";

fn refused(r: Refused) -> Response {
    crate::metrics::rate_limited(r.limit());
    ApiError::RateLimited {
        retry_after_secs: r.retry_after_secs(),
    }
    .into_response()
}

/// The client address, from the connection and (for trusted proxies) X-Forwarded-For.
pub fn client_ip(app: &AppContext, req: &Request) -> IpAddr {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let xff = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    app.limits.client_ip(peer, xff)
}

/// Routes that take no credential: whatever headers a request to them carries, it is an
/// anonymous request of its address.
const ANONYMOUS_ROUTES: &[&str] = &[
    "/v1/workers/register",
    "/webhooks/github",
    "/",
    "/assets/{file}",
    "/healthz",
    "/readyz",
    "/health",
    "/openapi.json",
    "/metrics",
];

/// What a request's credential is, as far as it can be told before the handler: admin
/// tokens are checked here (they live in memory); a worker token or a dashboard session
/// counts only once it has authenticated on this replica.
enum Credential {
    Admin,
    Known(TokenKey),
    /// A worker token or session not seen to authenticate here yet: looked up, unless its
    /// address is penalised; if it fails, the failure is charged to the address.
    Unverified,
    Anonymous,
}

fn credential(app: &AppContext, req: &Request) -> Credential {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let anonymous_route = match route {
        None => true,
        Some(r) if ANONYMOUS_ROUTES.contains(&r) || r.starts_with("/docs") => true,
        // signing in is the one anonymous use of the session route
        Some("/v1/dashboard/session") => req.method() == axum::http::Method::POST,
        Some(_) => false,
    };
    if anonymous_route {
        return Credential::Anonymous;
    }
    let headers = req.headers();
    if let Some(token) = header_str(headers, ADMIN_HEADER) {
        return match app.admin.identify(token) {
            Some(_) => Credential::Admin,
            None => Credential::Anonymous,
        };
    }
    let presented = bearer(headers).or_else(|| session_cookie(headers));
    match presented.map(auth::digest) {
        Some(key) if app.limits.is_known(&key) => Credential::Known(key),
        Some(_) => Credential::Unverified,
        None => Credential::Anonymous,
    }
}

/// Keys every limit by what authenticated. A worker token that authenticated here has its
/// own rate and in-flight slots, and its address's penalty does not refuse it; an admin
/// token is not limited. A request with no credential, a wrong admin token, or to an
/// anonymous route (whatever headers it carries) pays its address's rate. A worker token or
/// session not yet seen here is looked up without a charge (a fleet's first requests to a
/// restarted replica all come at once, often from one NAT address), but a 401 counts
/// against the address, and an address over its rate is refused before its next
/// credentials are even looked up. No per-token state exists for a token that never
/// authenticated.
pub async fn limit_clients(State(app): State<AppContext>, req: Request, next: Next) -> Response {
    let ip = client_ip(&app, &req);
    let is_session = bearer(req.headers()).is_none() && session_cookie(req.headers()).is_some();
    let _slot = match credential(&app, &req) {
        Credential::Admin => None,
        // a dashboard session is an admin's: no worker limits
        Credential::Known(_) if is_session => None,
        Credential::Known(key) => {
            if let Err(r) = app.limits.worker_request(&key) {
                return refused(r);
            }
            match app.limits.enter(&key).await {
                Ok(slot) => Some(slot),
                Err(r) => return refused(r),
            }
        }
        Credential::Unverified => {
            if let Err(r) = app.limits.penalty(ip) {
                return refused(r);
            }
            None
        }
        Credential::Anonymous => {
            if let Err(r) = app.limits.anonymous_request(ip) {
                return refused(r);
            }
            None
        }
    };
    let resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::UNAUTHORIZED {
        app.limits.failed_authentication(ip);
    }
    resp
}

/// Cuts off a request that runs past `OWP_REQUEST_TIMEOUT` with 503 `unavailable`; its
/// transaction, if any, rolls back. Streams are exempt, and a long poll gets its `wait`
/// on top.
pub async fn request_timeout(State(app): State<AppContext>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if route == STREAM_ROUTE {
        return next.run(req).await;
    }
    let mut limit = app.settings.limits.request_timeout;
    if route == WORK_ROUTE {
        limit += long_poll_wait(req.uri().query());
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            crate::metrics::request_timeout(&route);
            tracing::warn!(timeout = ?limit, "request timed out");
            ApiError::Busy("the request took longer than this server allows (OWP_REQUEST_TIMEOUT)")
                .into_response()
        }
    }
}

/// The `wait` of a long poll (0-60 s), from the query string.
fn long_poll_wait(query: Option<&str>) -> Duration {
    let secs = query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "wait")
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .map_or(0.0, |s| s.clamp(0.0, 60.0));
    Duration::from_secs_f64(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_poll_wait_is_read_and_bounded() {
        assert_eq!(long_poll_wait(Some("wait=30")), Duration::from_secs(30));
        assert_eq!(long_poll_wait(Some("max=2&wait=5")), Duration::from_secs(5));
        assert_eq!(long_poll_wait(Some("wait=1e9")), Duration::from_secs(60));
        assert_eq!(long_poll_wait(Some("wait=-3")), Duration::ZERO);
        assert_eq!(long_poll_wait(Some("wait=NaN")), Duration::ZERO);
        assert_eq!(long_poll_wait(None), Duration::ZERO);
    }
}
