//! A typed client of the OWP API over the wire types: the CLI's worker and admin commands,
//! `owp demo` and `owp bench` speak to the server only through this.
//!
//! Failures come back as [`ClientError`], whose text says what a person can do about it
//! (an unreachable server, a refused token, a rate limit and how long to wait).

mod error;
mod notify;
pub mod retry;
mod stream;

use std::time::Duration;

use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::ClientError;
pub use stream::StateStream;

use crate::wire::actions::{
    RequeueRequest, TaskActionResponse, TrustTierRequest, TrustTierResponse, WorkerActionResponse,
};
use crate::wire::admin::{RepoRequest, RepoResponse, TaskCreated, TaskRequest, TasksCreated};
use crate::wire::overview::StateResponse;
use crate::wire::reputation::Reputation;
use crate::wire::tasks::{StatusRequest, StatusResponse};
use crate::wire::views::{
    AuditList, AuditQuery, RepoList, TaskDetail, TaskList, TaskListQuery, WorkerDetail, WorkerList,
    WorkerListQuery,
};
use crate::wire::work::WorkResponse;
use crate::wire::workers::{
    HeartbeatRequest, HeartbeatResponse, RegisterRequest, RegisterResponse,
};

pub type ClientResult<T> = Result<T, ClientError>;

/// Who the client speaks as.
#[derive(Clone)]
pub enum Credentials {
    None,
    /// A worker's bearer token.
    Worker(String),
    /// An admin token (`X-Admin-Token`).
    Admin(String),
}

/// The API at one base URL, as one caller. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
}

/// Set to allow `http://` to a host that is not this machine (tokens then cross the
/// network in clear text).
pub const ALLOW_HTTP: &str = "OWP_ALLOW_INSECURE_HTTP";

/// Tokens travel in headers: plain HTTP is for this machine only, unless allowed.
fn refuse_cleartext(base: &str, allowed: bool) -> ClientResult<()> {
    let Ok(url) = reqwest::Url::parse(base) else {
        return Err(ClientError::Setup(format!("{base:?} is not a URL")));
    };
    let local = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "http" && !local && !allowed {
        return Err(ClientError::Setup(format!(
            "{base} is plain http to another machine: tokens would cross the network in clear text; use https (or set {ALLOW_HTTP}=1 on a network you trust)"
        )));
    }
    Ok(())
}

/// How long an ordinary request may take; a long poll adds its `wait`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Client {
    pub fn new(base: &str, credentials: Credentials) -> ClientResult<Self> {
        refuse_cleartext(base, std::env::var_os(ALLOW_HTTP).is_some())?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("owp/", env!("CARGO_PKG_VERSION")))
            // reqwest drops Authorization on a cross-host redirect, but not X-Admin-Token or
            // X-Registration-Token: follow redirects within the same origin only
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let same_origin = attempt.previous().first().is_some_and(|first| {
                    first.scheme() == attempt.url().scheme()
                        && first.host_str() == attempt.url().host_str()
                        && first.port_or_known_default() == attempt.url().port_or_known_default()
                });
                if attempt.previous().len() >= 5 || !same_origin {
                    attempt.stop()
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(Self::with_http(http, base, credentials))
    }

    /// Shares `http`'s connection pool (the benchmark runs thousands of callers on one).
    pub fn with_http(http: reqwest::Client, base: &str, credentials: Credentials) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            credentials,
        }
    }

    /// The same server and connections, as another caller.
    pub fn as_caller(&self, credentials: Credentials) -> Self {
        Self {
            credentials,
            ..self.clone()
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(REQUEST_TIMEOUT);
        match &self.credentials {
            Credentials::None => req,
            Credentials::Worker(token) => req.bearer_auth(token),
            Credentials::Admin(token) => req.header("x-admin-token", token),
        }
    }

    /// Sends and decodes a 2xx answer; anything else becomes a [`ClientError`].
    async fn send<T: DeserializeOwned>(
        &self,
        req: RequestBuilder,
    ) -> ClientResult<(StatusCode, T)> {
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        if !status.is_success() {
            return Err(ClientError::from_answer(status, &bytes, retry_after));
        }
        let body = serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: self.base.clone(),
            status: status.as_u16(),
            reason: e.to_string(),
        })?;
        Ok((status, body))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> ClientResult<T> {
        Ok(self.send(self.request(Method::GET, path)).await?.1)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> ClientResult<T> {
        Ok(self
            .send(self.request(Method::POST, path).json(body))
            .await?
            .1)
    }

    fn unreachable(&self, e: reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: error::transport_reason(&e),
        }
    }

    // --- worker ---

    /// Registers a worker; `registration_token` when the server requires one.
    pub async fn register(
        &self,
        req: &RegisterRequest,
        registration_token: Option<&str>,
    ) -> ClientResult<RegisterResponse> {
        let mut r = self.request(Method::POST, "/v1/workers/register").json(req);
        if let Some(t) = registration_token {
            r = r.header("x-registration-token", t);
        }
        Ok(self.send(r).await?.1)
    }

    pub async fn heartbeat(&self, req: &HeartbeatRequest) -> ClientResult<HeartbeatResponse> {
        self.post("/v1/workers/heartbeat", req).await
    }

    /// `PATCH /v1/workers/me`: the worker's own skills, capacity and repositories.
    pub async fn update_me(
        &self,
        req: &crate::wire::workers::WorkerPatch,
    ) -> ClientResult<crate::wire::workers::WorkerSettings> {
        Ok(self
            .send(self.request(Method::PATCH, "/v1/workers/me").json(req))
            .await?
            .1)
    }

    /// `GET /v1/work`: claims up to `max` new leases (server default when None), holding
    /// the request up to `wait` when nothing is claimable yet; answers every live lease.
    pub async fn poll(
        &self,
        max: Option<u32>,
        wait: Option<Duration>,
    ) -> ClientResult<WorkResponse> {
        let mut query: Vec<(&str, String)> = vec![];
        if let Some(m) = max {
            query.push(("max", m.to_string()));
        }
        let mut timeout = REQUEST_TIMEOUT;
        if let Some(w) = wait.filter(|w| !w.is_zero()) {
            query.push(("wait", w.as_secs().to_string()));
            timeout += w;
        }
        let req = self
            .request(Method::GET, "/v1/work")
            .query(&query)
            .timeout(timeout);
        Ok(self.send(req).await?.1)
    }

    pub async fn report(&self, task_id: &str, req: &StatusRequest) -> ClientResult<StatusResponse> {
        self.post(&format!("/v1/tasks/{}/status", segment(task_id)), req)
            .await
    }

    pub async fn reputation(&self, worker_id: &str) -> ClientResult<Reputation> {
        self.get(&format!("/v1/workers/{}/reputation", segment(worker_id)))
            .await
    }

    // --- admin ---

    /// Creates or updates a repo; true when it was created.
    pub async fn upsert_repo(&self, req: &RepoRequest) -> ClientResult<bool> {
        let (status, _): (_, RepoResponse) = self
            .send(self.request(Method::POST, "/v1/admin/repos").json(req))
            .await?;
        Ok(status == StatusCode::CREATED)
    }

    pub async fn list_repos(&self) -> ClientResult<RepoList> {
        self.get("/v1/admin/repos").await
    }

    pub async fn create_task(&self, req: &TaskRequest) -> ClientResult<TaskCreated> {
        self.post("/v1/admin/tasks", req).await
    }

    /// Creates all of `reqs` in one transaction (or none).
    pub async fn create_tasks(&self, reqs: &[TaskRequest]) -> ClientResult<TasksCreated> {
        self.post("/v1/admin/tasks", &reqs).await
    }

    pub async fn list_tasks(&self, q: &TaskListQuery) -> ClientResult<TaskList> {
        Ok(self
            .send(self.request(Method::GET, "/v1/tasks").query(q))
            .await?
            .1)
    }

    pub async fn task(&self, task_id: &str) -> ClientResult<TaskDetail> {
        self.get(&format!("/v1/tasks/{}", segment(task_id))).await
    }

    pub async fn requeue(
        &self,
        task_id: &str,
        reset_attempts: bool,
    ) -> ClientResult<TaskActionResponse> {
        let body = RequeueRequest {
            reset_attempts: Some(reset_attempts),
        };
        self.post(&format!("/v1/tasks/{}/requeue", segment(task_id)), &body)
            .await
    }

    pub async fn cancel(&self, task_id: &str) -> ClientResult<TaskActionResponse> {
        self.post(
            &format!("/v1/tasks/{}/cancel", segment(task_id)),
            &serde_json::json!({}),
        )
        .await
    }

    /// `decision`: `approve` or `deny` (PROTOCOL.md "Claim approval").
    pub async fn decide_claim(
        &self,
        task_id: &str,
        decision: &str,
    ) -> ClientResult<TaskActionResponse> {
        self.post(
            &format!("/v1/tasks/{}/{decision}", segment(task_id)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn list_workers(&self, q: &WorkerListQuery) -> ClientResult<WorkerList> {
        Ok(self
            .send(self.request(Method::GET, "/v1/workers").query(q))
            .await?
            .1)
    }

    pub async fn worker(&self, worker_id: &str) -> ClientResult<WorkerDetail> {
        self.get(&format!("/v1/workers/{}", segment(worker_id)))
            .await
    }

    /// `pause`, `resume` or `revoke`.
    pub async fn worker_action(
        &self,
        worker_id: &str,
        action: &str,
    ) -> ClientResult<WorkerActionResponse> {
        self.post(
            &format!("/v1/workers/{}/{action}", segment(worker_id)),
            &serde_json::json!({}),
        )
        .await
    }

    pub async fn set_trust_tier(
        &self,
        worker_id: &str,
        req: &TrustTierRequest,
    ) -> ClientResult<TrustTierResponse> {
        self.post(
            &format!("/v1/workers/{}/trust-tier", segment(worker_id)),
            req,
        )
        .await
    }

    pub async fn state(&self) -> ClientResult<StateResponse> {
        self.get("/v1/admin/state").await
    }

    /// `GET /v1/admin/state/stream`: the pool's state each time it changes.
    pub async fn state_stream(&self) -> ClientResult<StateStream> {
        let req = self
            .request(Method::GET, "/v1/admin/state/stream")
            .timeout(Duration::from_secs(365 * 24 * 3600));
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::from_answer(status, &bytes, None));
        }
        Ok(StateStream::new(resp))
    }

    pub async fn audit(&self, q: &AuditQuery) -> ClientResult<AuditList> {
        Ok(self
            .send(self.request(Method::GET, "/v1/audit/events").query(q))
            .await?
            .1)
    }
}

/// A path segment, percent-encoded (ids are URL-safe; this keeps odd input from
/// changing the route).
fn segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_for_this_machine_only() {
        for local in [
            "http://127.0.0.1:8787",
            "http://localhost:1",
            "http://[::1]:9",
            "https://pool.example.org",
        ] {
            assert!(refuse_cleartext(local, false).is_ok(), "{local}");
        }
        let err = refuse_cleartext("http://pool.example.org", false).unwrap_err();
        assert!(err.to_string().contains(ALLOW_HTTP), "{err}");
        assert!(refuse_cleartext("http://10.1.2.3", true).is_ok());
    }
}
