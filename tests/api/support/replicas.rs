//! Replicas as real `owp` processes on the test's database: start, wait until ready, ask
//! who leads, send signals.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

use super::{eventually, eventually_some, ADMIN};

pub const ELECTION: Duration = Duration::from_millis(500);

pub struct Replica {
    pub id: String,
    pub base: String,
    pub child: Child,
    log: std::path::PathBuf,
}

impl Replica {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, for at most 30 s (a test must never hang on it).
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        let what = format!("replica {} exits", self.id);
        let child = &mut self.child;
        eventually_some(&what, Duration::from_secs(30), || {
            let status = child.try_wait().unwrap();
            async move { status }
        })
        .await
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test database's URL: the server's DATABASE_URL with this test's database name.
pub fn database_url(conn: &PgConnectOptions) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let mut url = url::Url::parse(&base).unwrap();
    url.set_path(conn.get_database().expect("sqlx::test names the database"));
    url.to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_replica(db_url: &str, id: &str, extra_env: &[(&str, &str)]) -> Replica {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("owp-test-{id}-{port}.log"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_owp"));
    cmd.arg("serve")
        .env("DATABASE_URL", db_url)
        .env("OWP_HOST", "127.0.0.1")
        .env("OWP_PORT", port.to_string())
        .env("OWP_ADMIN_TOKEN", ADMIN)
        // registration is closed by default; these replicas admit any worker
        .env("OWP_OPEN_REGISTRATION", "true")
        .env("OWP_REPLICA_ID", id)
        .env("OWP_ELECTION_INTERVAL", "500ms")
        .env("OWP_SWEEP_INTERVAL", "500ms")
        .env("OWP_DB_MAX_CONNECTIONS", "5")
        // fleets here fail tasks on purpose and must finish them within a test's time
        .env("OWP_RETRY_BACKOFF", "200ms")
        .env("OWP_RETRY_BACKOFF_MAX", "1s")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    Replica {
        id: id.into(),
        base: format!("http://127.0.0.1:{port}"),
        child: cmd.spawn().expect("the owp binary starts"),
        log,
    }
}

pub async fn wait_ready(http: &reqwest::Client, r: &Replica) {
    let what = format!("replica {} becomes ready", r.id);
    eventually(&what, Duration::from_secs(30), || async {
        let resp = http.get(format!("{}/readyz", r.base)).send().await;
        resp.is_ok_and(|resp| resp.status().is_success())
    })
    .await;
}

/// Whether the replica says it leads (its `owp_scheduler_is_leader` gauge); None if it is down.
pub async fn is_leader(http: &reqwest::Client, r: &Replica) -> Option<bool> {
    let text = http
        .get(format!("{}/metrics", r.base))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .any(|l| l.trim() == "owp_scheduler_is_leader 1"),
    )
}

pub async fn leaders(http: &reqwest::Client, rs: &[&Replica]) -> Vec<String> {
    let mut out = vec![];
    for r in rs {
        if is_leader(http, r).await == Some(true) {
            out.push(r.id.clone());
        }
    }
    out
}

/// Waits until exactly one of `rs` leads (never two at once); returns it and how long that took.
pub async fn one_leader(
    http: &reqwest::Client,
    rs: &[&Replica],
    deadline: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    let leader = eventually_some("one leader", deadline, || async {
        let l = leaders(http, rs).await;
        assert!(l.len() <= 1, "two leaders at once: {l:?}");
        l.into_iter().next()
    })
    .await;
    (leader, start.elapsed())
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} sent");
}

/// Registers a worker on a replica (whose registration is open), with the wire types.
pub async fn register(http: &reqwest::Client, base: &str, name: &str) -> super::Worker {
    let req = owp_pool::wire::workers::RegisterRequest {
        name: name.into(),
        capacity_points: Some(3),
        max_concurrent_tasks: Some(2),
        ..Default::default()
    };
    let resp = http
        .post(format!("{base}/v1/workers/register"))
        .json(&req)
        .send()
        .await
        .expect("the replica answers");
    assert_eq!(resp.status(), reqwest::StatusCode::CREATED);
    let r: owp_pool::wire::workers::RegisterResponse = resp.json().await.unwrap();
    super::Worker {
        id: r.worker_id,
        token: r.token,
    }
}
