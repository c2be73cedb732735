//! The pool behind a real PgBouncer in transaction mode (`OWP_DB_POOLER=transaction`): few
//! server sessions handed from client to client, so a statement that assumed a session
//! (a cached prepared statement, a parse and a bind in different transactions, a LISTEN, a
//! session advisory lock) would fail or run someone else's statement. The storm of
//! `chaos.rs` runs through it too (`the_storm_through_pgbouncer_in_transaction_mode`).

use std::time::Duration;

use owp_pool::store::{self, Db, PoolSettings};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::fleet::{seed_tasks, Fleet};
use crate::support::pgbouncer::PgBouncer;
use crate::support::replicas::*;
use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(240);

fn settings() -> PoolSettings {
    PoolSettings {
        max_connections: 10,
        acquire_timeout: Duration::from_secs(10),
        statement_timeout: Duration::from_secs(10),
        through_pooler: true,
    }
}

fn through(bouncer: &PgBouncer, conn: &PgConnectOptions) -> Db {
    store::connect_lazy(&bouncer.url(&database_url(conn)), &settings())
        .unwrap()
        .with_session_options(conn.clone())
}

#[sqlx::test]
async fn a_fleet_through_pgbouncer_keeps_every_invariant(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_test_writer()
            .finish(),
    );
    // three replicas of ten client connections each over three server sessions
    let bouncer = PgBouncer::start(3);
    let pools = (0..3).map(|_| through(&bouncer, &conn)).collect();
    let checker = opts.max_connections(4).connect_with(conn).await.unwrap();
    let mut fleet = Fleet::on(pools, checker).await;
    seed_tasks(&fleet.replicas[0], 4, |_| 20, 400, 6).await;
    fleet
        .register(40, |i| (4 + (i % 4) as i64, 1 + (i % 3) as i64))
        .await;
    let o = fleet.run(true, 2, DEADLINE).await;
    fleet.assert_all_good(&o).await;
    let served: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity
          where datname = current_database() and application_name = 'owp-pool'",
    )
    .fetch_one(&fleet.pool)
    .await
    .unwrap();
    assert!(
        served <= 3,
        "the replicas' 30 connections were served by PgBouncer's 3 sessions, not {served}"
    );
}

#[test]
fn the_pooler_setting_needs_a_direct_url() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_owp"))
        .args(["serve", "--admin-token", "t"])
        .env("DATABASE_URL", "postgres://owp@127.0.0.1:6432/owp")
        .env("OWP_DB_POOLER", "transaction")
        .env_remove("OWP_LEADER_DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OWP_DB_POOLER=transaction needs OWP_LEADER_DATABASE_URL"),
        "{err}"
    );
}

/// Replicas as real processes through PgBouncer: the leader's lock and LISTEN go direct,
/// so one leader is elected, a poll waiting on one replica wakes when a task arrives
/// through the other, the sweep requeues an expired lease, and a revoked token is refused
/// at once on both.
#[sqlx::test]
async fn replicas_through_pgbouncer_elect_wake_sweep_and_revoke(
    _opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let bouncer = PgBouncer::start(2);
    let direct = database_url(&conn);
    let env = [
        ("OWP_DB_POOLER", "transaction"),
        ("OWP_LEADER_DATABASE_URL", direct.as_str()),
        ("OWP_LEASE_TTL", "2s"),
    ];
    let pooled = bouncer.url(&direct);
    let rs: Vec<Replica> = ["pa", "pb"]
        .iter()
        .map(|id| start_replica(&pooled, id, &env))
        .collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for r in &rs {
        wait_ready(&http, r).await;
    }
    let all: Vec<&Replica> = rs.iter().collect();
    one_leader(&http, &all, Duration::from_secs(10)).await;
    let (a, b) = (&rs[0].base, &rs[1].base);
    let admin = |base: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("x-admin-token", ADMIN)
            .json(&body)
            .send()
    };
    let created = admin(
        b,
        "/v1/admin/repos",
        json!({"repo": "org/pooled", "max_open_prs": 5}),
    )
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let w = register(&http, a, "pooled-worker").await;

    // a poll waits on replica a; the task arrives through replica b
    let poll = {
        let (http, a, token) = (http.clone(), a.clone(), w.token.clone());
        tokio::spawn(async move {
            let resp = http
                .get(format!("{a}/v1/work?wait=20"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let task = json!({"repo": "org/pooled", "title": "through the pooler", "max_attempts": 3});
    assert_eq!(
        admin(b, "/v1/admin/tasks", task).await.unwrap().status(),
        201
    );
    let started = std::time::Instant::now();
    let answer = poll.await.unwrap();
    let leases = answer["leases"].as_array().unwrap();
    assert_eq!(leases.len(), 1, "the waiting poll got the task: {answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woken by the other replica's signal, not by the wait's end"
    );
    let task_id = leases[0]["task_id"].as_str().unwrap().to_string();

    // the lease expires (2 s) and the leader's sweep requeues it
    eventually(
        "the leader requeues the expired lease",
        Duration::from_secs(20),
        || async {
            let t: Value = http
                .get(format!("{b}/v1/tasks/{task_id}"))
                .header("x-admin-token", ADMIN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            t["status"] == "ready"
        },
    )
    .await;

    // revoked through b, refused at once on a and b
    let revoked = admin(b, &format!("/v1/workers/{}/revoke", w.id), json!({}))
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    for base in [a, b] {
        let resp = http
            .get(format!("{base}/v1/work"))
            .bearer_auth(&w.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "a revoked token on {base}");
    }
    let pool = sqlx::PgPool::connect(&direct).await.unwrap();
    assert_invariants(&pool).await;
}

/// Every request runs with its timeouts and without JIT, direct or through the pooler
/// (where the settings ride each transaction's `SET LOCAL`, the startup `options` being
/// refused): a short statement must not pay for compiling a plan whose estimate is
/// inflated (the claim's `enable_sort = off`).
#[sqlx::test]
async fn requests_run_with_their_timeouts_and_without_jit(
    _opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let bouncer = PgBouncer::start(2);
    let direct = store::connect_lazy(
        &database_url(&conn),
        &PoolSettings {
            through_pooler: false,
            ..settings()
        },
    )
    .unwrap();
    for db in [direct, through(&bouncer, &conn)] {
        let (jit, timeout): (String, String) =
            sqlx::query_as("select current_setting('jit'), current_setting('statement_timeout')")
                .fetch_one(&db)
                .await
                .unwrap();
        assert_eq!((jit.as_str(), timeout.as_str()), ("off", "10s"));
        let mut tx = store::begin(&db).await.unwrap();
        let jit: String = sqlx::query_scalar("select current_setting('jit')")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert_eq!(jit, "off", "inside a transaction too");
        tx.rollback().await.unwrap();
    }
}
