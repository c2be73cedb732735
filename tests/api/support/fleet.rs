//! A simulated worker fleet for the concurrency tests: W workers with mixed skills and
//! capacities poll through several app replicas (each with its own pool) sharing one
//! database, and drive tasks through random lifecycles. A monitor runs the invariant
//! checker on consistent snapshots throughout, so a transient violation is caught too.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use owp_pool::store::Db;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::support::*;

pub const SKILL_SETS: [&[&str]; 4] = [
    &["rust"],
    &["rust", "sql"],
    &["go", "sql"],
    &["rust", "go", "sql", "docs"],
];

#[derive(Clone)]
pub struct FleetWorker {
    pub w: Worker,
    pub skills: Vec<String>,
    pub capacity: i64,
    pub max_tasks: i64,
}

#[derive(Default)]
pub struct Observed {
    /// lease_id -> (task_id, worker_id)
    pub leases: HashMap<String, (String, String)>,
    pub violations: Vec<String>,
    pub unexpected: Vec<String>,
    /// worker_id -> lease ids granted after the worker's pause was acknowledged
    pub claimed_while_paused: Vec<String>,
}

pub struct Fleet {
    pub replicas: Vec<TestApp>,
    pub pool: PgPool,
    pub workers: Vec<FleetWorker>,
}

impl Fleet {
    pub async fn start(opts: PgPoolOptions, conn: PgConnectOptions, replicas: usize) -> Fleet {
        let mut pools = Vec::new();
        for _ in 0..replicas {
            let pool = opts
                .clone()
                .max_connections(10)
                .connect_with(conn.clone())
                .await
                .unwrap();
            pools.push(Db::direct(pool));
        }
        let pool = opts.max_connections(4).connect_with(conn).await.unwrap();
        Fleet::on(pools, pool).await
    }

    /// A fleet whose replicas use `pools` (one each), checked through `checker`, a direct
    /// pool.
    pub async fn on(pools: Vec<Db>, checker: PgPool) -> Fleet {
        let mut apps = Vec::new();
        for (i, pool) in pools.into_iter().enumerate() {
            let settings = owp_pool::config::Settings {
                replica_id: format!("replica-{i}"),
                // short, so failed tasks come back within the run, through the backoff path
                retry_backoff: std::time::Duration::from_millis(100),
                retry_backoff_max: std::time::Duration::from_millis(400),
                ..test_settings()
            };
            let mut app = spawn_app_with(pool, settings).await;
            app.pool = checker.clone();
            apps.push(app);
        }
        Fleet {
            replicas: apps,
            pool: checker,
            workers: vec![],
        }
    }

    pub async fn register(&mut self, n: usize, capacity: impl Fn(usize) -> (i64, i64)) {
        for i in 0..n {
            let skills = SKILL_SETS[i % SKILL_SETS.len()];
            let (cap, max) = capacity(i);
            let app = &self.replicas[i % self.replicas.len()];
            let w = app.register(&format!("fleet-{i}"), skills, cap, max).await;
            self.workers.push(FleetWorker {
                w,
                skills: skills.iter().map(|s| s.to_string()).collect(),
                capacity: cap,
                max_tasks: max,
            });
        }
    }

    /// Runs every worker until no task is left unfinished; returns what the clients saw.
    /// `pollers` concurrent poll loops per worker (several processes of one contributor).
    pub async fn run(&self, pause_some: bool, pollers: usize, deadline: Duration) -> Observed {
        let observed = Arc::new(Mutex::new(Observed::default()));
        let done = Arc::new(AtomicBool::new(false));
        let started = Instant::now();

        let monitor = {
            let (pool, done, observed) = (self.pool.clone(), done.clone(), observed.clone());
            tokio::spawn(async move {
                let mut checks = 0u32;
                while !done.load(Ordering::Relaxed) {
                    let v = owp_pool::store::invariants::check(&pool).await.unwrap();
                    checks += 1;
                    if !v.is_empty() {
                        observed.lock().unwrap().violations.extend(v);
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                checks
            })
        };
        let finisher = {
            let (pool, done) = (self.pool.clone(), done.clone());
            tokio::spawn(async move {
                while started.elapsed() < deadline {
                    let open: i64 = sqlx::query_scalar("select count(*) from tasks where status not in ('completed', 'merged', 'failed')")
                        .fetch_one(&pool).await.unwrap();
                    if open == 0 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                done.store(true, Ordering::Relaxed);
            })
        };
        let mut handles = vec![];
        let apps: Vec<(String, reqwest::Client)> = self
            .replicas
            .iter()
            .map(|a| (a.base.clone(), a.http.clone()))
            .collect();
        for (i, fw) in self.workers.iter().enumerate() {
            let held = Arc::new(Mutex::new(HashSet::new()));
            for p in 0..pollers {
                let (apps, fw, held) = (apps.clone(), fw.clone(), held.clone());
                let (done, observed) = (done.clone(), observed.clone());
                let pauses = pause_some && i % 5 == 0 && p == 0;
                let seed = i * pollers + p;
                handles.push(tokio::spawn(async move {
                    simulate(seed, apps, fw, done, observed, held, pauses).await
                }));
            }
        }
        for h in handles {
            h.await.unwrap();
        }
        finisher.await.unwrap();
        let checks = monitor.await.unwrap();
        assert!(
            checks > 3,
            "the monitor checked the database while the fleet ran ({checks} checks)"
        );
        assert!(
            started.elapsed() < deadline,
            "the fleet did not finish every task in {deadline:?}"
        );
        Arc::try_unwrap(observed)
            .ok()
            .unwrap()
            .into_inner()
            .unwrap()
    }

    /// The checks every fleet test ends with.
    pub async fn assert_all_good(&self, o: &Observed) {
        assert!(
            o.violations.is_empty(),
            "invariants broken during the run:\n{}",
            o.violations.join("\n")
        );
        assert!(
            o.unexpected.is_empty(),
            "unexpected answers:\n{}",
            o.unexpected.join("\n")
        );
        assert_invariants(&self.pool).await;
        let leftovers: Vec<(String, String, i32, i32)> = sqlx::query_as(
            "select id, status, attempt, max_attempts from tasks
             where status not in ('completed', 'merged') and not (status = 'failed' and attempt = max_attempts)",
        )
        .fetch_all(&self.pool).await.unwrap();
        assert!(
            leftovers.is_empty(),
            "tasks that did not end where they should: {leftovers:?}"
        );
        let live: i64 = sqlx::query_scalar("select count(*) from leases where ended_at is null")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        assert_eq!(live, 0, "every lease ended");
        let granted: i64 = sqlx::query_scalar("select count(*) from leases")
            .fetch_one(&self.pool)
            .await
            .unwrap();
        assert_eq!(
            granted as usize,
            o.leases.len(),
            "clients saw every lease the database granted, and no other"
        );
    }
}

async fn simulate(
    i: usize,
    apps: Vec<(String, reqwest::Client)>,
    fw: FleetWorker,
    done: Arc<AtomicBool>,
    observed: Arc<Mutex<Observed>>,
    held: Arc<Mutex<HashSet<String>>>,
    pauses: bool,
) {
    let mut rng = StdRng::seed_from_u64(i as u64);
    let auth = format!("Bearer {}", fw.w.token);
    let mut paused = false;
    let mut polls = 0u64;
    while !done.load(Ordering::Relaxed) {
        polls += 1;
        let (base, http) = &apps[(polls as usize + i) % apps.len()];
        if pauses && polls % 7 == 0 {
            paused = !paused;
            let status = if paused { "paused" } else { "working" };
            let r = http
                .post(format!("{base}/v1/workers/heartbeat"))
                .header("authorization", &auth)
                .json(&json!({"status": status}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
        }
        let r = http
            .get(format!("{base}/v1/work"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            unexpected(&observed, "poll", r).await;
            continue;
        }
        let body: Value = r.json().await.unwrap();
        let leases = body["leases"].as_array().unwrap().clone();
        {
            let mut o = observed.lock().unwrap();
            let points: i64 = leases
                .iter()
                .map(|l| l["estimate_points"].as_i64().unwrap())
                .sum();
            if points > fw.capacity || leases.len() as i64 > fw.max_tasks {
                o.violations.push(format!(
                    "I2 client saw {} leases / {points} points for {}",
                    leases.len(),
                    fw.w.id
                ));
            }
            for l in &leases {
                let lease_id = l["lease_id"].as_str().unwrap().to_string();
                let task = l["task_id"].as_str().unwrap().to_string();
                for s in l["required_skills"].as_array().unwrap() {
                    if !fw.skills.iter().any(|k| k == s.as_str().unwrap()) {
                        o.violations
                            .push(format!("I3 {} got {task} needing {s}", fw.w.id));
                    }
                }
                if let Some((t, w)) = o.leases.get(&lease_id) {
                    if *t != task || *w != fw.w.id {
                        o.violations
                            .push(format!("I1 lease {lease_id} seen for two holders"));
                    }
                } else {
                    if paused {
                        o.claimed_while_paused.push(lease_id.clone());
                    }
                    o.leases.insert(lease_id, (task, fw.w.id.clone()));
                }
            }
        }
        if leases.is_empty() {
            tokio::time::sleep(Duration::from_millis(rng.random_range(2..10))).await;
            continue;
        }
        for l in leases {
            let task = l["task_id"].as_str().unwrap().to_string();
            let lease_id = l["lease_id"].as_str().unwrap().to_string();
            if !held.lock().unwrap().insert(lease_id.clone()) {
                continue; // this worker already drives this lease
            }
            let path = |t: &str| format!("{base}/v1/tasks/{t}/status");
            // one PR per attempt, of the task's own repository (a PR earns one task credit)
            let pr_url = super::pr_link(l["repo"].as_str().unwrap());
            let steps: &[&str] = match rng.random_range(0..100) {
                0..=44 => &["in_progress", "completed"],
                45..=59 => &["in_progress", "pr_opened", "merged"],
                60..=69 => &["pr_opened", "closed"],
                70..=79 => &["in_progress", "failed"],
                80..=89 => &["released"],
                _ => &["blocked", "in_progress", "completed"],
            };
            for step in steps {
                tokio::time::sleep(Duration::from_micros(rng.random_range(0..2000))).await;
                let r = http
                    .post(path(&task))
                    .header("authorization", &auth)
                    .json(&json!({"status": step, "lease_id": lease_id,
                                  "pr_url": pr_url}))
                    .send()
                    .await
                    .unwrap();
                if r.status() != StatusCode::OK {
                    unexpected(&observed, &format!("{task} -> {step}"), r).await;
                    break;
                }
            }
        }
    }
}

/// Records an answer the fleet did not expect, with its status and body.
async fn unexpected(observed: &Mutex<Observed>, what: &str, r: reqwest::Response) {
    let s = r.status();
    let text = r.text().await.unwrap();
    observed
        .lock()
        .unwrap()
        .unexpected
        .push(format!("{what}: {s} {text}"));
}

/// Repos with small budgets, several sharing area names, and tasks with mixed skills and sizes.
pub async fn seed_tasks(
    app: &TestApp,
    repos: usize,
    budget: impl Fn(usize) -> i64,
    tasks: usize,
    areas: usize,
) {
    for r in 0..repos {
        app.create_repo(&format!("org/repo-{r}"), budget(r), true)
            .await;
    }
    let mut rng = StdRng::seed_from_u64(42);
    let all: Vec<Value> = (0..tasks)
        .map(|i| {
            let skills: &[&str] = match i % 5 {
                0 => &["rust"],
                1 => &["sql"],
                2 => &["go"],
                3 => &["rust", "sql"],
                _ => &[],
            };
            let area =
                (areas > 0 && i % 3 != 0).then(|| format!("area-{}", rng.random_range(0..areas)));
            json!({"repo": format!("org/repo-{}", i % repos), "title": format!("task {i}"),
                   "required_skills": skills, "estimate_points": rng.random_range(1..=4),
                   "priority": rng.random_range(0..5), "area": area, "max_attempts": 5})
        })
        .collect();
    for chunk in all.chunks(250) {
        app.create_tasks(chunk.to_vec()).await;
    }
}
