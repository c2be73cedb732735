//! The dashboard: a page and its assets, embedded in the binary (no CDN, no build step),
//! and its sign-in. The page reads and acts through the same admin API as every client,
//! authenticated by an HttpOnly session cookie (EventSource cannot send headers); every
//! action made with the cookie must carry the session's `X-OWP-CSRF` value, and the cookie
//! is `SameSite=Strict`, so another site can neither read nor ride it.

use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::extract::{
    session_cookie, ApiJson, ApiQuery, AuthAdmin, ForwardedTls, SESSION_COOKIE, SESSION_COOKIE_TLS,
};
use crate::app::AppContext;
use crate::auth;
use crate::error::ApiError;
use crate::store::{overview, sessions};
use crate::wire::dashboard::{Minute, SessionInfo, SignIn, Throughput, ThroughputQuery};
use crate::wire::ErrorBody;

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const APP_JS: &str = include_str!("../../assets/dashboard/app.js");
const APP_CSS: &str = include_str!("../../assets/dashboard/app.css");

/// A short hash of the assets: their URLs carry it, so they can be cached for good and a
/// new binary's page still loads its own.
fn version() -> &'static str {
    static V: OnceLock<String> = OnceLock::new();
    V.get_or_init(|| {
        let d = auth::digest(&format!("{APP_JS}{APP_CSS}"));
        hex::encode(&d[..6])
    })
}

/// The dashboard's policy: only our own scripts and styles.
const DASHBOARD_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

/// Headers every dashboard answer carries: no framing, no sniffing, only our own scripts.
fn secured(resp: Response) -> Response {
    with_page_headers(resp, DASHBOARD_CSP)
}

/// What every page the server renders for a browser carries (the dashboard, `/docs`): its
/// content policy, no framing, no sniffing, no referrer.
pub fn with_page_headers(mut resp: Response, csp: &'static str) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// `GET /`: the page; never cached, so a deploy shows at once.
pub async fn index() -> Response {
    let html = INDEX.replace("{{version}}", version());
    secured(
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            html,
        )
            .into_response(),
    )
}

/// `GET /assets/{file}`: versioned by the page's links, so cached for a year.
pub async fn asset(Path(file): Path<String>) -> Result<Response, ApiError> {
    let (body, content_type) = match file.as_str() {
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return Err(ApiError::NotFound("asset")),
    };
    Ok(secured(
        (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            body,
        )
            .into_response(),
    ))
}

/// Sign in: an admin token for a session cookie.
#[utoipa::path(post, path = "/v1/dashboard/session", tag = "dashboard", request_body = SignIn,
    responses((status = 201, description = "signed in: Set-Cookie owp_session (HttpOnly, SameSite=Strict)", body = SessionInfo),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn sign_in(
    State(app): State<AppContext>,
    ForwardedTls(tls): ForwardedTls,
    ApiJson(req): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    let Some(id) = app.admin.identify(req.admin_token.trim()) else {
        crate::metrics::auth_failure("admin");
        return Err(ApiError::Auth("invalid admin token"));
    };
    if id.scope.repos().is_some() {
        // the dashboard's pages are pool-wide (state, workers' actions, the outbox)
        return Err(ApiError::Forbidden(
            "the dashboard needs a pool-wide admin token; a repository's token works with the API and `owp admin`",
        ));
    }
    let actor = crate::http::extract::admin_actor(id.name);
    let token = auth::generate_token();
    let csrf = auth::generate_token();
    let ttl = app.settings.dashboard_session_ttl;
    let expires_at = sessions::create(
        &app.pool,
        &auth::digest(&token),
        &auth::digest(req.admin_token.trim()),
        &actor,
        &csrf,
        ttl,
    )
    .await?;
    // over TLS (a trusted proxy says so) the cookie is `__Host-` and Secure; plain HTTP is
    // for local use only
    let cookie = if tls {
        format!(
            "{SESSION_COOKIE_TLS}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}; Secure",
            ttl.as_secs()
        )
    } else {
        format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
            ttl.as_secs()
        )
    };
    let info = SessionInfo {
        signed_in: true,
        actor: Some(actor),
        expires_at: Some(expires_at),
        csrf: Some(csrf),
    };
    let mut resp = (StatusCode::CREATED, Json(info)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|_| ApiError::Internal)?,
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The current session (with its CSRF value for actions), or `signed_in: false`: the
/// page asks before it knows, so "no" is an answer, not an error.
#[utoipa::path(get, path = "/v1/dashboard/session", tag = "dashboard",
    responses((status = 200, body = SessionInfo)))]
pub async fn current(
    State(app): State<AppContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = match session_cookie(&headers) {
        Some(token) => sessions::find(&app.pool, &auth::digest(token)).await?,
        None => None,
    };
    let info = match session {
        Some(s) => SessionInfo {
            signed_in: true,
            actor: Some(s.actor),
            expires_at: Some(s.expires_at),
            csrf: Some(s.csrf),
        },
        None => SessionInfo {
            signed_in: false,
            actor: None,
            expires_at: None,
            csrf: None,
        },
    };
    let mut resp = Json(info).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// Sign out: the session ends on every replica, the cookie is cleared.
#[utoipa::path(delete, path = "/v1/dashboard/session", tag = "dashboard",
    responses((status = 204, description = "signed out (also when no session was there)")))]
pub async fn sign_out(
    State(app): State<AppContext>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&headers) {
        sessions::delete(&app.pool, &auth::digest(token)).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    for clear in [
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        format!("{SESSION_COOKIE_TLS}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0; Secure"),
    ] {
        resp.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_str(&clear).map_err(|_| ApiError::Internal)?,
        );
    }
    Ok(resp)
}

/// Leases granted and tasks finished per minute.
#[utoipa::path(get, path = "/v1/admin/throughput", tag = "admin", security(("admin" = [])),
    params(ThroughputQuery),
    responses((status = 200, body = Throughput), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn throughput(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
    ApiQuery(q): ApiQuery<ThroughputQuery>,
) -> Result<Json<Throughput>, ApiError> {
    let minutes = crate::domain::input::int_in("minutes", q.minutes, 60, 1, 1440)?;
    let rows = overview::throughput(&app.pool, minutes).await?;
    Ok(Json(Throughput {
        minutes: rows
            .into_iter()
            .map(|(at, claimed, completed)| Minute {
                at,
                claimed,
                completed,
            })
            .collect(),
    }))
}
