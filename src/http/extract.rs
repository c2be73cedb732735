//! Extractors: JSON bodies whose errors name the field, query strings, and the two kinds of
//! credentials (worker bearer token, admin token). All rejections are `ApiError`s.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::app::AppContext;
use crate::auth;
use crate::auth::AdminScope;
use crate::domain::ids::WorkerId;
use crate::domain::transition::Actor;
use crate::error::ApiError;
use crate::limits::TokenKey;
use crate::store::workers;

pub const ADMIN_HEADER: &str = "x-admin-token";
pub const REGISTRATION_HEADER: &str = "x-registration-token";

/// A JSON object body. No body (or `null`) reads as `{}`: every field optional, e.g. a bare
/// heartbeat. Arrays are refused, not read as serde's positional form of a struct.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppContext> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, ApiError> {
        let bytes = read_body(req, app).await?;
        let trimmed = bytes.trim_ascii();
        let body: &[u8] = match trimmed {
            // no body at all, or JSON null; whitespace alone is not JSON
            _ if bytes.is_empty() => b"{}",
            b"null" => b"{}",
            b"" => {
                return Err(ApiError::Validation(
                    "body: malformed JSON (no value)".into(),
                ))
            }
            [b'{', ..] => trimmed,
            _ => return Err(ApiError::Validation("body: must be a JSON object".into())),
        };
        parse_json(body).map(ApiJson)
    }
}

/// Any JSON body (an object or an array), for endpoints that take both.
pub struct ApiJsonAny(pub serde_json::Value);

impl FromRequest<AppContext> for ApiJsonAny {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, ApiError> {
        let bytes = read_body(req, app).await?;
        parse_json(&bytes).map(ApiJsonAny)
    }
}

/// The body as sent, unparsed (a webhook's signature covers its exact bytes).
pub struct RawBody(pub Bytes);

impl FromRequest<AppContext> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &AppContext) -> Result<Self, ApiError> {
        read_body(req, app).await.map(RawBody)
    }
}

/// A route's own body limit, set beside its `DefaultBodyLimit` (http::router), so a body
/// over it is answered with that limit, not `OWP_BODY_LIMIT`.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

async fn read_body(req: Request, app: &AppContext) -> Result<Bytes, ApiError> {
    let limit = req
        .extensions()
        .get::<BodyLimit>()
        .map_or(app.settings.body_limit, |l| l.0);
    Bytes::from_request(req, app).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::Validation("body: could not be read".into())
        }
    })
}

/// Deserialises JSON; a failure names the field path (`skills[3]`, `[2].title`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(field_error)
}

/// Like `parse_json`, for a body already read as a JSON value (bulk endpoints).
pub fn parse_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(field_error)
}

fn field_error(e: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if inner.is_syntax() || inner.is_eof() {
        return ApiError::Validation(format!("body: malformed JSON ({inner})"));
    }
    // serde_json appends " at line L column C"; the path says more
    let msg = inner.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    // serde reports a missing field at its parent; name the field itself
    if let Some(field) = msg
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        return ApiError::Validation(if path == "." {
            format!("{field}: is required")
        } else {
            format!("{path}.{field}: is required")
        });
    }
    if path == "." {
        ApiError::Validation(format!("body: {msg}"))
    } else {
        ApiError::Validation(format!("{path}: {msg}"))
    }
}

/// A query string, its errors as `validation_error`.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                let text = e.body_text();
                let text = text.trim_start_matches("Failed to deserialize query string: ");
                ApiError::Validation(format!("query: {text}"))
            })
    }
}

/// The worker named by `Authorization: Bearer <token>`.
pub struct AuthWorker {
    pub id: WorkerId,
}

impl FromRequestParts<AppContext> for AuthWorker {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        WorkerToken::from_request_parts(parts, app)
            .await?
            .authenticate(app)
            .await
    }
}

/// A worker's bearer token, not yet checked: for a route whose own statement checks it
/// (digest and `revoked_at`, in the same round trip as its work), which then reports the
/// answer with [`WorkerToken::accepted`] or [`WorkerToken::refused`].
pub struct WorkerToken {
    pub key: TokenKey,
}

impl WorkerToken {
    /// Checks the token in a statement of its own (`store::workers::authenticate`).
    pub async fn authenticate(self, app: &AppContext) -> Result<AuthWorker, ApiError> {
        match workers::authenticate(&app.pool, &self.key).await? {
            Some(worker) => Ok(self.accepted(app, worker)),
            None => Err(self.refused(app)),
        }
    }

    /// The statement found the token's worker: from now on the token has limits of its
    /// own (`http::limits`), and the request is the worker's sign of life.
    pub fn accepted(self, app: &AppContext, worker: WorkerId) -> AuthWorker {
        app.limits.authenticated(&self.key);
        app.liveness.seen(&worker);
        tracing::Span::current().record("worker_id", worker.as_str());
        AuthWorker { id: worker }
    }

    /// No worker holds this token (unknown, rotated or revoked): 401, and this replica
    /// forgets it.
    pub fn refused(self, app: &AppContext) -> ApiError {
        crate::metrics::auth_failure("worker");
        app.limits.forget(&self.key);
        ApiError::Auth("invalid worker token")
    }
}

impl FromRequestParts<AppContext> for WorkerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _app: &AppContext) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or_else(|| {
            crate::metrics::auth_failure("worker");
            ApiError::Auth("missing bearer token: send Authorization: Bearer <token>")
        })?;
        Ok(WorkerToken {
            key: auth::digest(token),
        })
    }
}

/// An admin, by `X-Admin-Token`. Worker tokens are never accepted here.
pub struct AuthAdmin {
    /// For the audit log: `admin:<name>` for a named token, else `admin`.
    pub actor: String,
    /// The dashboard session's digest, when the admin came by its cookie: a long-lived
    /// answer (the state stream) must end when the session does.
    pub session: Option<[u8; 32]>,
    /// The whole pool, or the repositories a scoped token names. Only [`RepoAdmin`] lets a
    /// scoped token through; its routes check the scope themselves.
    pub scope: AdminScope,
}

impl AuthAdmin {
    /// 403 unless this admin may act on `repo`.
    pub fn may(&self, repo: &str) -> Result<(), ApiError> {
        if self.scope.admits(repo) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "this admin token is scoped to other repositories",
            ))
        }
    }

    async fn any(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        match session_cookie(&parts.headers) {
            Some(token) if !parts.headers.contains_key(ADMIN_HEADER) => {
                verify_session(token, parts, app).await
            }
            _ => verify_admin(&parts.headers, app),
        }
    }
}

/// A pool-wide admin: a token scoped to repositories is refused (403), so a route that
/// does not think about scopes never serves one.
impl FromRequestParts<AppContext> for AuthAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        let admin = Self::any(parts, app).await?;
        if admin.scope.repos().is_some() {
            return Err(ApiError::Forbidden(
                "this admin token is scoped to repositories; this route needs a pool-wide admin token",
            ));
        }
        Ok(admin)
    }
}

/// Any admin, a repository-scoped token too: for the routes that limit what they read or
/// change to `scope` (a repository's settings, tasks, audit events, analytics, sync).
pub struct RepoAdmin(pub AuthAdmin);

impl FromRequestParts<AppContext> for RepoAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        AuthAdmin::any(parts, app).await.map(Self)
    }
}

/// The dashboard's session cookie over plain HTTP (local use).
pub const SESSION_COOKIE: &str = "owp_session";
/// The session cookie over TLS: `__Host-` makes the browser refuse it unless it is
/// `Secure`, `Path=/` and host-only, so no sibling subdomain can set or shadow it.
pub const SESSION_COOKIE_TLS: &str = "__Host-owp_session";
/// Actions made with the cookie carry the session's CSRF value in this header.
pub const CSRF_HEADER: &str = "x-owp-csrf";

pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    let value = |name: &str| {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
            .filter(|t| !t.is_empty())
    };
    value(SESSION_COOKIE_TLS).or_else(|| value(SESSION_COOKIE))
}

/// The browser reached the pool over TLS: a TLS-terminating proxy in
/// `OWP_TRUSTED_PROXIES` said so with `X-Forwarded-Proto: https`. Anyone else's header is
/// ignored, as for `X-Forwarded-For`.
pub struct ForwardedTls(pub bool);

impl FromRequestParts<AppContext> for ForwardedTls {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        let trusted = peer.is_some_and(|ip| app.limits.is_trusted_proxy(ip));
        let https = header_str(&parts.headers, "x-forwarded-proto")
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        Ok(Self(trusted && https))
    }
}

/// A dashboard session: live, from an admin token still configured, and for anything but
/// a read, with its CSRF value.
async fn verify_session(
    token: &str,
    parts: &Parts,
    app: &AppContext,
) -> Result<AuthAdmin, ApiError> {
    use subtle::ConstantTimeEq;
    let key = crate::auth::digest(token);
    let session = crate::store::sessions::find(&app.pool, &key).await?;
    let scope = session.as_ref().and_then(|s| {
        <[u8; 32]>::try_from(s.admin_digest.as_slice())
            .ok()
            .and_then(|d| app.admin.identify_digest(&d))
            .map(|id| id.scope)
    });
    let (Some(session), Some(scope)) = (session, scope) else {
        crate::metrics::auth_failure("session");
        app.limits.forget(&key);
        return Err(ApiError::Auth(
            "session expired or signed out: sign in again",
        ));
    };
    app.limits.authenticated(&key);
    let reads = matches!(
        parts.method,
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    if !reads {
        let sent = header_str(&parts.headers, CSRF_HEADER).unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes())) {
            return Err(ApiError::Forbidden(
                "a dashboard action needs the session's X-OWP-CSRF header",
            ));
        }
    }
    Ok(AuthAdmin {
        session: Some(key),
        actor: session.actor,
        scope,
    })
}

/// The audit log's name for an admin: `admin:<name>`, or `admin` for an unnamed token.
pub fn admin_actor(name: Option<&str>) -> String {
    name.map_or_else(|| "admin".to_string(), |n| format!("admin:{n}"))
}

fn verify_admin(headers: &HeaderMap, app: &AppContext) -> Result<AuthAdmin, ApiError> {
    let presented = header_str(headers, ADMIN_HEADER);
    if let Some(id) = presented.and_then(|t| app.admin.identify(t)) {
        return Ok(AuthAdmin {
            actor: admin_actor(id.name),
            session: None,
            scope: id.scope,
        });
    }
    crate::metrics::auth_failure("admin");
    Err(ApiError::Auth(if presented.is_some() {
        "invalid admin token"
    } else {
        "missing admin token: send X-Admin-Token"
    }))
}

/// Who reports a task status: an admin (by `X-Admin-Token`) or a worker (by bearer token).
pub enum Caller {
    Admin(AuthAdmin),
    Worker(AuthWorker),
}

impl Caller {
    pub fn actor(&self) -> Actor<'_> {
        match self {
            Self::Admin(_) => Actor::Admin,
            Self::Worker(w) => Actor::Worker(w.id.as_str()),
        }
    }

    /// For the audit log: `admin:<name>`, `admin` or `worker:<id>`.
    pub fn audit_actor(&self) -> String {
        match self {
            Self::Admin(a) => a.actor.clone(),
            Self::Worker(w) => format!("worker:{}", w.id),
        }
    }
}

/// An admin, or a worker's token not yet checked: for a route whose worker path may check
/// the token in its own statement (a guarded status report), and otherwise authenticates
/// it the usual way ([`CallerToken::authenticate`]).
pub enum CallerToken {
    Admin(AuthAdmin),
    Worker(WorkerToken),
}

impl CallerToken {
    /// The caller, its worker token checked as [`AuthWorker`] checks it.
    pub async fn authenticate(self, app: &AppContext) -> Result<Caller, ApiError> {
        match self {
            Self::Admin(a) => Ok(Caller::Admin(a)),
            Self::Worker(token) => token.authenticate(app).await.map(Caller::Worker),
        }
    }
}

impl FromRequestParts<AppContext> for CallerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        if parts.headers.contains_key(ADMIN_HEADER)
            || (bearer(&parts.headers).is_none() && session_cookie(&parts.headers).is_some())
        {
            // a scoped admin too: the routes taking a Caller check the task's repository
            return AuthAdmin::any(parts, app).await.map(CallerToken::Admin);
        }
        WorkerToken::from_request_parts(parts, app)
            .await
            .map(CallerToken::Worker)
    }
}

impl FromRequestParts<AppContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppContext) -> Result<Self, ApiError> {
        CallerToken::from_request_parts(parts, app)
            .await?
            .authenticate(app)
            .await
    }
}

pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header_str(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
