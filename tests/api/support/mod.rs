//! The test harness: start the real app on an ephemeral port against a test database, and
//! a small client speaking the wire protocol; `fleet` simulates many workers, `replicas`
//! runs real `owp` processes, `private_pg` owns a PostgreSQL instance for outage tests, `pgbouncer` a pooler
//! in transaction mode,
//! `eventually` waits on conditions instead of time.

pub mod cli;
pub mod eventually;
pub mod fake_github;
pub mod fleet;
pub mod pgbouncer;
pub mod private_pg;
pub mod proxy;
pub mod receiver;
pub mod replicas;

pub use eventually::{eventually, eventually_some, until_a_request_waits_on_a_lock};

use std::time::Duration;

use owp_pool::app::AppContext;
use owp_pool::auth::{Registration, TokenSet};
use owp_pool::config::Settings;
use owp_pool::wire::workers::{RegisterRequest, RegisterResponse};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ADMIN: &str = "test-admin-token";

/// A new pull request link of `repo` (owner/name) on GitHub: each call a new number, since
/// one PR earns credit for one task.
pub fn pr_link(repo: &str) -> String {
    // far above the small numbers tests spell out themselves
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("https://github.com/{repo}/pull/{n}")
}

pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub pool: PgPool,
    pub ctx: AppContext,
    /// Dropping the app stops its server.
    _stop: oneshot::Sender<()>,
}

#[derive(Clone, Debug)]
pub struct Worker {
    pub id: String,
    pub token: String,
}

/// A parsed answer: status and JSON body (Null when the body is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub request_id: Option<String>,
}

impl Answer {
    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        self.body
    }

    /// Asserts an error answer in PROTOCOL.md's format with this code.
    #[track_caller]
    pub fn expect_error(self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "body: {}",
            self.body
        );
        assert!(self.body.get("details").is_some() && self.body.get("suggestion").is_some());
        assert!(
            self.request_id.is_some(),
            "error answers carry x-request-id"
        );
        self.body
    }
}

pub fn test_settings() -> Settings {
    Settings {
        replica_id: "test-replica".into(),
        // most tests fail a task and claim it again at once; the backoff tests set their own
        retry_backoff: Duration::ZERO,
        // the tier caps have tests of their own (hostile.rs); elsewhere a worker's
        // declaration and OWP_LEASE_TTL count in full
        tier_max_concurrent: Default::default(),
        tier_lease_ttl: Default::default(),
        ..Settings::defaults()
    }
}

pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, test_settings()).await
}

pub async fn spawn_app_with(pool: impl Into<owp_pool::store::Db>, settings: Settings) -> TestApp {
    // registration is closed by default; the test app opens it, as OWP_OPEN_REGISTRATION does
    let ctx = AppContext::new(pool, settings, TokenSet::new([ADMIN]), Registration::Open);
    spawn_ctx(ctx).await
}

pub async fn spawn_ctx(ctx: AppContext) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = oneshot::channel();
    tokio::spawn(owp_pool::server::serve_on(ctx.clone(), listener, async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        pool: ctx.pool.pool().clone(),
        ctx,
        _stop: tx,
    }
}

impl TestApp {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request reaches the server");
        let status = resp.status();
        let request_id = resp
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string());
        let text = resp.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            request_id,
        }
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call(method, path, &[("x-admin-token", ADMIN)], body)
            .await
    }

    pub async fn create_repo(&self, repo: &str, max_open_prs: i64, area_locks: bool) {
        self.admin(
            Method::POST,
            "/v1/admin/repos",
            Some(json!({"repo": repo, "max_open_prs": max_open_prs, "area_locks_enabled": area_locks})),
        )
        .await
        .expect(StatusCode::CREATED);
    }

    /// Creates one task from a JSON object; returns its id.
    pub async fn create_task(&self, task: Value) -> String {
        let body = self
            .admin(Method::POST, "/v1/admin/tasks", Some(task))
            .await
            .expect(StatusCode::CREATED);
        body["task_id"].as_str().unwrap().to_string()
    }

    pub async fn create_tasks(&self, tasks: Vec<Value>) -> Vec<String> {
        let body = self
            .admin(Method::POST, "/v1/admin/tasks", Some(Value::Array(tasks)))
            .await
            .expect(StatusCode::CREATED);
        body["task_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    pub async fn register(
        &self,
        name: &str,
        skills: &[&str],
        capacity: i64,
        max_tasks: i64,
    ) -> Worker {
        let req = RegisterRequest {
            name: name.into(),
            skills: Some(skills.iter().map(|s| s.to_string()).collect()),
            capacity_points: Some(capacity),
            max_concurrent_tasks: Some(max_tasks),
            ..RegisterRequest::default()
        };
        let body = self
            .call(
                Method::POST,
                "/v1/workers/register",
                &[],
                Some(serde_json::to_value(req).unwrap()),
            )
            .await
            .expect(StatusCode::CREATED);
        let r: RegisterResponse = serde_json::from_value(body).expect("a RegisterResponse");
        Worker {
            id: r.worker_id,
            token: r.token,
        }
    }

    pub async fn as_worker(
        &self,
        w: &Worker,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let auth = format!("Bearer {}", w.token);
        self.call(method, path, &[("authorization", &auth)], body)
            .await
    }

    /// Polls for work; returns the leases array.
    pub async fn poll(&self, w: &Worker) -> Vec<Value> {
        self.poll_query(w, "").await
    }

    pub async fn poll_query(&self, w: &Worker, query: &str) -> Vec<Value> {
        let body = self
            .as_worker(w, Method::GET, &format!("/v1/work{query}"), None)
            .await
            .expect(StatusCode::OK);
        assert_eq!(body["worker_id"], w.id.as_str());
        body["leases"].as_array().unwrap().clone()
    }

    pub async fn report(&self, w: &Worker, task_id: &str, body: Value) -> Answer {
        self.as_worker(
            w,
            Method::POST,
            &format!("/v1/tasks/{task_id}/status"),
            Some(body),
        )
        .await
    }

    pub async fn state(&self) -> Value {
        self.admin(Method::GET, "/v1/admin/state", None)
            .await
            .expect(StatusCode::OK)
    }

    pub async fn task_row(&self, task_id: &str) -> (String, i32, Option<String>) {
        sqlx::query_as("select status, attempt, worker_id from tasks where id = $1")
            .bind(task_id)
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// Runs the invariant checker and fails the test on any violation.
/// The task ids of a poll's leases, sorted.
pub fn ids(leases: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = leases
        .iter()
        .map(|l| l["task_id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

pub async fn assert_invariants(pool: &PgPool) {
    let v = owp_pool::store::invariants::check(pool).await.unwrap();
    assert!(v.is_empty(), "invariants violated:\n{}", v.join("\n"));
}

pub async fn audit_kinds(pool: &PgPool, task_id: &str) -> Vec<String> {
    sqlx::query_scalar("select kind from audit_events where task_id = $1 order by id")
        .bind(task_id)
        .fetch_all(pool)
        .await
        .unwrap()
}

impl TestApp {
    /// `register` with an owned name, for building many workers concurrently.
    pub async fn register_owned(&self, name: String) -> Worker {
        self.register(&name, &[], 10, 2).await
    }
}
