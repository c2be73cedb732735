//! Several replicas as real processes: one leader at a time, failover on kill -9 and on
//! SIGTERM, and a restarted replica standing by.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

use crate::support::ADMIN;

const ELECTION: Duration = Duration::from_millis(500);

pub struct Replica {
    pub id: String,
    pub base: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Replica {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
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
        .env("OWP_REPLICA_ID", id)
        .env("OWP_ELECTION_INTERVAL", "500ms")
        .env("OWP_SWEEP_INTERVAL", "500ms")
        .env("OWP_DB_MAX_CONNECTIONS", "5")
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
    let start = Instant::now();
    loop {
        if let Ok(resp) = http.get(format!("{}/readyz", r.base)).send().await {
            if resp.status().is_success() {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "replica {} never became ready",
            r.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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

async fn leaders(http: &reqwest::Client, rs: &[&Replica]) -> Vec<String> {
    let mut out = vec![];
    for r in rs {
        if is_leader(http, r).await == Some(true) {
            out.push(r.id.clone());
        }
    }
    out
}

/// Waits until exactly one of `rs` leads; returns it and how long that took.
async fn one_leader(
    http: &reqwest::Client,
    rs: &[&Replica],
    deadline: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    loop {
        let l = leaders(http, rs).await;
        if l.len() == 1 {
            return (l[0].clone(), start.elapsed());
        }
        assert!(l.len() <= 1, "two leaders at once: {l:?}");
        assert!(start.elapsed() < deadline, "no leader within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} sent");
}

#[sqlx::test(migrator = "owp_pool::store::MIGRATOR")]
async fn one_leader_at_a_time_and_failover_on_kill_and_sigterm(
    _o: sqlx::postgres::PgPoolOptions,
    conn: PgConnectOptions,
) {
    let url = database_url(&conn);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let mut rs: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|id| start_replica(&url, id, &[]))
        .collect();
    for r in &rs {
        wait_ready(&http, r).await;
    }
    let all: Vec<&Replica> = rs.iter().collect();
    let (first, _) = one_leader(&http, &all, ELECTION * 10).await;
    // sample repeatedly: exactly one leader, and the state names it
    for _ in 0..20 {
        assert_eq!(leaders(&http, &all).await, vec![first.clone()]);
        let state: serde_json::Value = http
            .get(format!("{}/v1/admin/state", rs[0].base))
            .header("x-admin-token", ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(state["scheduler"]["leader"], first.as_str());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // kill -9 the leader: Postgres drops its session and lock; another replica takes over
    let idx = rs.iter().position(|r| r.id == first).unwrap();
    let killed = rs.remove(idx);
    let killed_id = killed.id.clone();
    let t0 = Instant::now();
    drop(killed); // SIGKILL + wait
    let rest: Vec<&Replica> = rs.iter().collect();
    let (second, _) = one_leader(&http, &rest, ELECTION * 10).await;
    let kill_failover = t0.elapsed();
    assert_ne!(second, first);

    // SIGTERM the new leader: it releases the lock on its way out; the last one takes over
    let idx = rs.iter().position(|r| r.id == second).unwrap();
    let mut leaving = rs.remove(idx);
    let t1 = Instant::now();
    signal(&leaving.child, "-TERM");
    let rest: Vec<&Replica> = rs.iter().collect();
    let (third, _) = one_leader(&http, &rest, ELECTION * 10).await;
    let term_handover = t1.elapsed();
    let status = leaving.child.wait().unwrap();
    assert!(
        status.success(),
        "a SIGTERM'd replica exits cleanly: {status:?}"
    );
    assert_ne!(third, second);

    // the killed replica comes back and stands by
    let back = start_replica(&url, &killed_id, &[]);
    wait_ready(&http, &back).await;
    tokio::time::sleep(ELECTION * 3).await;
    assert_eq!(
        is_leader(&http, &back).await,
        Some(false),
        "a restarted replica stands by"
    );
    let mut now: Vec<&Replica> = rs.iter().collect();
    now.push(&back);
    assert_eq!(leaders(&http, &now).await, vec![third.clone()]);
    println!(
        "failover with {ELECTION:?} election interval: kill -9 -> new leader in {kill_failover:?}; SIGTERM -> handover in {term_handover:?}"
    );
}

#[sqlx::test(migrator = "owp_pool::store::MIGRATOR")]
async fn a_leader_whose_lock_connection_dies_steps_down_and_the_lock_moves(
    _o: sqlx::postgres::PgPoolOptions,
    conn: PgConnectOptions,
) {
    let url = database_url(&conn);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let rs: Vec<Replica> = ["x", "y"]
        .iter()
        .map(|id| start_replica(&url, id, &[]))
        .collect();
    for r in &rs {
        wait_ready(&http, r).await;
    }
    let all: Vec<&Replica> = rs.iter().collect();
    let (first, _) = one_leader(&http, &all, ELECTION * 10).await;
    // cut the leader's lock session from the database side while its process lives
    let pool = sqlx::PgPool::connect_with(conn).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
         where application_name = 'owp-leader' and datname = current_database()
           and pid in (select pid from pg_locks where locktype = 'advisory' and granted)) t",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(killed, 1, "the leader's lock session was found and cut");
    // the old leader cannot know at once; it must notice within a few election ticks
    let start = Instant::now();
    let old = rs.iter().find(|r| r.id == first).unwrap();
    while !lost_leadership(&http, old).await {
        assert!(
            start.elapsed() < ELECTION * 6,
            "the old leader did not notice it lost the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stepped_down = start.elapsed();
    let (now, _) = one_leader(&http, &all, ELECTION * 10).await;
    for _ in 0..10 {
        assert_eq!(
            leaders(&http, &all).await,
            vec![now.clone()],
            "one leader once the dust settles"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "lock session killed: old leader {first} stepped down after {stepped_down:?}; {now} leads"
    );
    // whoever leads now holds a live lock session
    let holders: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid
         where l.locktype = 'advisory' and l.granted and a.application_name = 'owp-leader'
           and a.datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(holders, 1);
}

/// Whether the replica has recorded losing leadership (its own counter says so).
async fn lost_leadership(http: &reqwest::Client, r: &Replica) -> bool {
    let text = http
        .get(format!("{}/metrics", r.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines().any(|l| {
        l.starts_with("owp_scheduler_leadership_changes_total{event=\"lost\"}")
            && l.split_whitespace().last().is_some_and(|n| n != "0")
    })
}
