//! Chaos: three real replicas and fifty workers spread over all of them, while the leader
//! is killed with SIGKILL again and again, a replica is frozen with SIGSTOP past the
//! heartbeat timeout, the connections between the replicas and PostgreSQL are cut, and
//! PostgreSQL itself restarts. Afterwards every invariant holds, every task is terminal,
//! every lease a client saw was granted by the database, and no answer fell outside the
//! protocol (5xx only as `unavailable`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use owp_pool::wire::work::WorkResponse;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::pgbouncer::PgBouncer;
use crate::support::private_pg::OwnPostgres;
use crate::support::proxy::Proxy;
use crate::support::replicas::{is_leader, register, signal, start_replica, wait_ready, Replica};
use crate::support::*;

const WORKERS: usize = 50;
const TASKS: usize = 400;
const REPLICAS: usize = 3;

/// What the clients saw, shared by the worker tasks.
#[derive(Default)]
struct Seen {
    bases: RwLock<Vec<String>>,
    /// lease_id -> (task_id, worker_id)
    leases: Mutex<HashMap<String, (String, String)>>,
    /// answers by kind ("200", "409 lease_lost", "503 unavailable", "network", ...)
    answers: Mutex<BTreeMap<String, u64>>,
    unexpected: Mutex<Vec<String>>,
    stop: AtomicBool,
}

impl Seen {
    fn base(&self, n: usize) -> String {
        let bases = self.bases.read().unwrap();
        bases[n % bases.len()].clone()
    }

    fn count(&self, kind: String) {
        *self.answers.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// Classifies an answer: `Some(body)` for a 2xx, `None` for an answer the protocol
    /// allows under chaos (network errors, 503 unavailable, 409 lease_lost); anything else
    /// is recorded as unexpected.
    async fn check(
        &self,
        what: &str,
        resp: Result<reqwest::Response, reqwest::Error>,
    ) -> Option<Value> {
        let resp = match resp {
            Ok(r) => r,
            Err(_) => {
                self.count("network".into()); // killed, frozen or restarting replica
                return None;
            }
        };
        let status = resp.status().as_u16();
        let Ok(body) = resp.json::<Value>().await else {
            self.count("network".into());
            return None;
        };
        let code = body["code"].as_str().unwrap_or("");
        let details = body["details"].as_str().unwrap_or("");
        match (status, code, details) {
            (200 | 201, _, _) => {
                self.count(status.to_string());
                Some(body)
            }
            (503, "unavailable", _) | (409, "conflict", "lease_lost") => {
                self.count(format!("{status} {code} {details}"));
                None
            }
            _ => {
                self.count(format!("{status} {code}"));
                let line = format!("{what}: {status} {body}");
                self.unexpected.lock().unwrap().push(line);
                None
            }
        }
    }
}

/// One simulated contributor: polls any replica, drives each lease to an outcome, merges
/// the PRs it opened; gives up on a request that fails and lets the sweeps clean up.
async fn contributor(i: usize, w: Worker, seen: Arc<Seen>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut rng = StdRng::seed_from_u64(i as u64);
    let mut opened: Vec<(String, String)> = vec![];
    // a lease is driven once: an outcome whose answer was lost (a frozen or killed replica
    // may still apply it) is never followed by a different one; the sweeps clean up
    let mut driven: std::collections::HashSet<String> = Default::default();
    let mut n = i;
    while !seen.stop.load(Ordering::Relaxed) {
        n += 1;
        let base = seen.base(n);
        let report = |task: String, lease: String, status: &'static str| {
            report_until_definite(&seen, &http, &w.token, i + n, task, lease, status)
        };
        let mut still_open = vec![];
        for (task, lease) in opened.drain(..) {
            if report(task.clone(), lease.clone(), "merged")
                .await
                .is_none()
            {
                still_open.push((task, lease));
            }
        }
        opened = still_open;
        let poll = http
            .get(format!("{base}/v1/work"))
            .bearer_auth(&w.token)
            .send()
            .await;
        let Some(body) = seen.check("poll", poll).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let leases = serde_json::from_value::<WorkResponse>(body)
            .expect("a poll answers a WorkResponse")
            .leases;
        {
            let mut known = seen.leases.lock().unwrap();
            for l in &leases {
                let holder = (l.task_id.clone(), w.id.clone());
                let before = known.entry(l.lease_id.clone()).or_insert(holder.clone());
                if *before != holder {
                    let line = format!("lease {} seen as {before:?} and {holder:?}", l.lease_id);
                    seen.unexpected.lock().unwrap().push(line);
                }
            }
        }
        if leases.is_empty() {
            tokio::time::sleep(Duration::from_millis(rng.random_range(20..60))).await;
        }
        for l in leases {
            if !driven.insert(l.lease_id.clone()) {
                continue;
            }
            let steps: &[&'static str] = match rng.random_range(0..100) {
                0..=59 => &["in_progress", "completed"],
                60..=74 => &["in_progress", "failed"],
                75..=84 => &["released"],
                _ => &["in_progress", "pr_opened"],
            };
            for step in steps {
                if report(l.task_id.clone(), l.lease_id.clone(), step)
                    .await
                    .is_none()
                {
                    break;
                }
                if *step == "pr_opened" {
                    opened.push((l.task_id.clone(), l.lease_id.clone()));
                }
            }
        }
    }
}

/// Sends a status report until its answer is definite, each time through the next replica:
/// an answer lost to a killed or frozen replica may still have been applied, so the client
/// repeats the same report (a repeat is answered 200 by the protocol) and never guesses.
async fn report_until_definite(
    seen: &Seen,
    http: &reqwest::Client,
    token: &str,
    n: usize,
    task: String,
    lease: String,
    status: &'static str,
) -> Option<Value> {
    // one PR per lease (a PR earns credit for one task); the repos are not owner/name, so
    // any pull request link is theirs
    let pr = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        lease.hash(&mut h);
        h.finish() % 1_000_000_000 + 1
    };
    let body = json!({"status": status, "lease_id": lease,
                      "pr_url": format!("https://github.com/o/r/pull/{pr}")});
    for attempt in 0..30 {
        let base = seen.base(n + attempt);
        let r = http
            .post(format!("{base}/v1/tasks/{task}/status"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await;
        match r {
            Ok(resp) if resp.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                return seen.check(status, Ok(resp)).await;
            }
            other => {
                seen.check(status, other).await; // counts 503 unavailable or the network error
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    None
}

fn replica_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("OWP_ELECTION_INTERVAL", "300ms"),
        ("OWP_SWEEP_INTERVAL", "300ms"),
        ("OWP_LEASE_TTL", "8s"),
        ("OWP_HEARTBEAT_INTERVAL", "1s"),
        ("OWP_HEARTBEAT_TIMEOUT", "4s"),
        ("OWP_DB_ACQUIRE_TIMEOUT", "1s"),
        ("OWP_SHUTDOWN_TIMEOUT", "2s"),
    ]
}

/// Runs the invariant checker every half second on a direct connection; a failed read
/// (the database is restarting) is skipped, a violation is kept.
fn monitor(pool: PgPool, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<(u64, Vec<String>)> {
    tokio::spawn(async move {
        let (mut runs, mut found) = (0, vec![]);
        while !stop.load(Ordering::Relaxed) {
            if let Ok(v) = owp_pool::store::invariants::check(&pool).await {
                runs += 1;
                found.extend(v);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        (runs, found)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_survives_kills_freezes_cuts_and_database_restarts() {
    let pg = OwnPostgres::init();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], pg.port))).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    storm(&pg, &proxy, &via_proxy, &replica_env()).await;
}

/// The same storm with every replica's request pool going through a real PgBouncer in
/// transaction mode (itself behind the proxy that cuts connections, so a cut or a restart
/// reaches it too), few server connections for many clients; the leader's lock, LISTEN and
/// migrations go direct (`OWP_LEADER_DATABASE_URL`, through the proxy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storm_through_pgbouncer_in_transaction_mode() {
    let pg = OwnPostgres::init();
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], pg.port))).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/postgres", proxy.port);
    let bouncer = PgBouncer::start_for(&via_proxy, 4);
    let mut env = replica_env();
    env.push(("OWP_DB_POOLER", "transaction"));
    env.push(("OWP_LEADER_DATABASE_URL", &via_proxy));
    // a statement bound to a prepared statement the server session does not have (or has
    // from another client) fails, and the storm counts any 500 as an answer outside the
    // protocol
    storm(&pg, &proxy, &bouncer.url(&via_proxy), &env).await;
}

/// Three replicas (request pools on `db_url`, with `env`) and the crowd, through eight
/// rounds of kills, freezes, connection cuts and restarts; then every check of the module
/// doc.
async fn storm(pg: &OwnPostgres, proxy: &Proxy, db_url: &str, env: &[(&str, &str)]) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut replicas: Vec<Replica> = (0..REPLICAS)
        .map(|i| start_replica(db_url, &format!("chaos-{i}"), env))
        .collect();
    for r in &replicas {
        wait_ready(&http, r).await;
    }
    let direct = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&pg.url())
        .unwrap();
    let seen = Arc::new(Seen::default());
    *seen.bases.write().unwrap() = replicas.iter().map(|r| r.base.clone()).collect();
    let workers = seed(&http, &replicas[0].base).await;

    let stop_monitor = Arc::new(AtomicBool::new(false));
    let checks = monitor(direct.clone(), stop_monitor.clone());
    let crowd: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(i, w)| tokio::spawn(contributor(i, w, seen.clone())))
        .collect();

    let mut log = ChaosLog::default();
    for round in 0..8 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        if round % 2 == 0 {
            kill_leader(&http, &mut replicas, &seen, db_url, env, &mut log).await;
            continue;
        }
        match round / 2 % 3 {
            0 => {
                let r = &replicas[round % REPLICAS];
                signal(&r.child, "-STOP");
                tokio::time::sleep(Duration::from_secs(5)).await; // past the heartbeat timeout
                signal(&r.child, "-CONT");
                log.freezes += 1;
            }
            1 => {
                proxy.cut();
                tokio::time::sleep(Duration::from_secs(2)).await;
                proxy.restore();
                log.cuts += 1;
            }
            _ => {
                pg.stop();
                tokio::time::sleep(Duration::from_secs(1)).await;
                pg.start();
                log.restarts += 1;
            }
        }
    }

    // the storm is over: every task must reach a terminal state
    eventually(
        "every task is terminal",
        Duration::from_secs(120),
        || async {
            let open: Result<i64, _> = sqlx::query_scalar(
                "select count(*) from tasks where status not in ('completed', 'merged', 'failed')",
            )
            .fetch_one(&direct)
            .await;
            open.is_ok_and(|n| n == 0)
        },
    )
    .await;
    seen.stop.store(true, Ordering::Relaxed);
    for c in crowd {
        c.await.unwrap();
    }
    stop_monitor.store(true, Ordering::Relaxed);
    let (monitor_runs, transient) = checks.await.unwrap();

    let leases = check_leases_seen(&direct, &seen).await;
    assert_invariants(&direct).await;
    let live: i64 = sqlx::query_scalar("select count(*) from leases where ended_at is null")
        .fetch_one(&direct)
        .await
        .unwrap();
    assert_eq!(live, 0, "every lease ended");
    let unexpected = seen.unexpected.lock().unwrap().clone();
    let answers = seen.answers.lock().unwrap().clone();
    println!(
        "chaos: {} leader kills, {} freezes, {} connection cuts, {} PostgreSQL restarts; \
         {TASKS} tasks, {WORKERS} workers, {leases} leases seen; checker ran {monitor_runs} times \
         during the run; violations {}; answers {answers:?}",
        log.kills,
        log.freezes,
        log.cuts,
        log.restarts,
        transient.len()
    );
    assert!(
        transient.is_empty(),
        "violations while running: {transient:?}"
    );
    assert!(
        unexpected.is_empty(),
        "answers outside the protocol: {unexpected:?}"
    );
    assert!(log.kills >= 4 && log.freezes >= 1 && log.cuts >= 1 && log.restarts >= 1);
}

#[derive(Default)]
struct ChaosLog {
    kills: u32,
    freezes: u32,
    cuts: u32,
    restarts: u32,
}

/// SIGKILLs the replica that leads (if one does right now) and starts a new process in
/// its place.
async fn kill_leader(
    http: &reqwest::Client,
    replicas: &mut [Replica],
    seen: &Seen,
    db_url: &str,
    env: &[(&str, &str)],
    log: &mut ChaosLog,
) {
    let mut leader = None;
    for (i, r) in replicas.iter().enumerate() {
        if is_leader(http, r).await == Some(true) {
            leader = Some(i);
        }
    }
    let i = leader.unwrap_or(log.kills as usize % replicas.len());
    signal(&replicas[i].child, "-KILL");
    let _ = replicas[i].wait().await;
    let id = replicas[i].id.clone();
    replicas[i] = start_replica(db_url, &id, env);
    wait_ready(http, &replicas[i]).await;
    seen.bases.write().unwrap()[i] = replicas[i].base.clone();
    log.kills += 1;
}

/// Repos with small budgets and areas, tasks, and the workers (registered once).
async fn seed(http: &reqwest::Client, base: &str) -> Vec<Worker> {
    let admin = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("x-admin-token", ADMIN)
            .json(&body)
            .send()
    };
    for r in 0..4 {
        let repo = json!({"repo": format!("chaos-r{r}"), "max_open_prs": 8, "area_locks_enabled": r % 2 == 0});
        assert!(admin("/v1/admin/repos", repo)
            .await
            .unwrap()
            .status()
            .is_success());
    }
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| {
            json!({"repo": format!("chaos-r{}", i % 4), "title": format!("chaos {i}"),
                   "estimate_points": 1 + i % 2, "area": format!("a{}", i % 7), "max_attempts": 10})
        })
        .collect();
    assert!(admin("/v1/admin/tasks", Value::Array(tasks))
        .await
        .unwrap()
        .status()
        .is_success());
    let mut workers = vec![];
    for i in 0..WORKERS {
        workers.push(register(http, base, &format!("chaos-{i}")).await);
    }
    workers
}

/// Every lease a client was given exists in the database, for that task and worker.
async fn check_leases_seen(pool: &PgPool, seen: &Seen) -> usize {
    let known: HashMap<String, (String, String)> =
        sqlx::query_as::<_, (String, String, String)>("select id, task_id, worker_id from leases")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(l, t, w)| (l, (t, w)))
            .collect();
    let seen = seen.leases.lock().unwrap();
    for (lease, holder) in seen.iter() {
        assert_eq!(
            known.get(lease),
            Some(holder),
            "lease {lease} as the client saw it"
        );
    }
    seen.len()
}
