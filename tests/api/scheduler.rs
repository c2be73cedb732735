//! Scheduler duties in process: lease expiry, offline workers, and sweeps racing each other.

use owp_pool::domain::retry::Backoff;
use owp_pool::store::Db;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use owp_pool::scheduler::{lease_expiry, offline_workers};

use crate::support::*;

/// An app with short timers and its elector running (it becomes the leader).
async fn app_with_scheduler(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
    ttl: Duration,
    hb: Duration,
) -> (TestApp, ()) {
    let pool = opts
        .max_connections(10)
        .connect_with(conn.clone())
        .await
        .unwrap();
    let settings = owp_pool::config::Settings {
        lease_ttl: ttl,
        heartbeat_timeout: hb,
        lease_expiry_interval: Some(Duration::from_millis(200)),
        offline_workers_interval: Some(Duration::from_millis(300)),
        election_interval: Duration::from_millis(200),
        ..test_settings()
    };
    let app = spawn_app_with(pool, settings).await;
    owp_pool::scheduler::spawn_elector(&app.ctx, conn);
    (app, ())
}

#[sqlx::test]
async fn expired_leases_requeue_until_max_attempts(opts: PgPoolOptions, conn: PgConnectOptions) {
    let (app, _stop) =
        app_with_scheduler(opts, conn, Duration::from_secs(2), Duration::from_secs(300)).await;
    app.create_repo("r", 5, true).await;
    let t = app
        .create_task(json!({"repo": "r", "title": "slow", "area": "a", "max_attempts": 2}))
        .await;
    let w = app.register("slow", &[], 5, 2).await;
    let lease = app.poll(&w).await[0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(
        "the expired lease is requeued",
        Duration::from_secs(15),
        || async { app.task_row(&t).await == ("ready".into(), 1, None) },
    )
    .await;
    let e = app
        .report(&w, &t, json!({"status": "in_progress", "lease_id": lease}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    let mut kinds = audit_kinds(&app.pool, &t).await;
    kinds[2..].sort(); // written by one statement: same transaction, no order between them
    assert_eq!(
        kinds,
        [
            "task_created",
            "lease_granted",
            "lease_expired",
            "task_requeued"
        ]
    );
    let s = app.state().await;
    assert_eq!(s["scheduler"]["leader"], "test-replica");
    assert!(s["scheduler"]["last_sweep_at"].is_string());

    // second attempt expires too: terminal failed at max_attempts
    assert_eq!(app.poll(&w).await[0]["attempt"], 1);
    eventually(
        "the last attempt fails the task",
        Duration::from_secs(15),
        || async { app.task_row(&t).await.0 == "failed" },
    )
    .await;
    assert_eq!(app.task_row(&t).await, ("failed".into(), 2, None));
    let e = app
        .report(&w, &t, json!({"status": "completed"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn a_silent_worker_loses_its_live_leases_but_keeps_its_pr(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let (app, _stop) = app_with_scheduler(
        opts,
        conn,
        Duration::from_secs(3600),
        Duration::from_secs(1),
    )
    .await;
    app.create_repo("r", 2, true).await;
    let pr = app
        .create_task(json!({"repo": "r", "title": "pr", "area": "ui", "priority": 3}))
        .await;
    let work = app
        .create_task(json!({"repo": "r", "title": "work", "priority": 2}))
        .await;
    let blocked_by_area = app
        .create_task(json!({"repo": "r", "title": "ui 2", "area": "ui", "priority": 1}))
        .await;
    let gone = app.register("gone", &[], 10, 5).await;
    assert_eq!(app.poll(&gone).await.len(), 2);
    app.report(
        &gone,
        &pr,
        json!({"status": "pr_opened", "pr_url": "https://example.com/pr/9"}),
    )
    .await
    .expect(StatusCode::OK);
    app.report(&gone, &work, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);

    // `gone` goes silent; the sweep marks it offline and requeues its live lease
    eventually(
        "the silent worker's live lease is requeued",
        Duration::from_secs(15),
        || async { app.task_row(&work).await.0 == "ready" },
    )
    .await;
    let online: bool = sqlx::query_scalar("select online from workers where id = $1")
        .bind(&gone.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!online);
    assert_eq!(
        app.task_row(&pr).await.0,
        "pr_opened",
        "the PR keeps its slot and area lock"
    );
    let reasons: Vec<String> = sqlx::query_scalar(
        "select reason from audit_events where task_id = $1 and kind = 'task_requeued'",
    )
    .bind(&work)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(reasons, ["worker_offline"]);

    let other = app.register("other", &[], 10, 5).await;
    let got: Vec<String> = app
        .poll(&other)
        .await
        .iter()
        .map(|l| l["task_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        got,
        vec![work.clone()],
        "the requeued task, never the one behind the held area: {blocked_by_area}"
    );
    // the old holder comes back: online again, but the lease it lost stays lost
    app.as_worker(
        &gone,
        Method::POST,
        "/v1/workers/heartbeat",
        Some(json!({})),
    )
    .await
    .expect(StatusCode::OK);
    let online: bool = sqlx::query_scalar("select online from workers where id = $1")
        .bind(&gone.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(online);
    let e = app
        .report(&gone, &work, json!({"status": "completed"}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    // it can still finish its PR
    app.report(&gone, &pr, json!({"status": "merged"}))
        .await
        .expect(StatusCode::OK);
    assert_invariants(&app.pool).await;
}

/// Inserts `n` tasks leased to one worker with leases that expired a minute ago.
async fn seed_expired(pool: &PgPool, n: i64, repo: &str) {
    sqlx::query("insert into repositories (repo, max_open_prs) values ($1, 10000)")
        .bind(repo)
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("insert into workers (id, name, token_digest, skills, capacity_points, max_concurrent_tasks)
                 values ('w_bulk_' || $1, 'bulk', sha256(convert_to($1, 'utf8')), '{}', 1000, 100)")
        .bind(repo).execute(pool).await.unwrap();
    sqlx::query("insert into tasks (id, repo, title, estimate_points, status, worker_id, lease_id, lease_expires_at)
                 select 't_' || $1 || g, $1, 'bulk', 1, 'leased', 'w_bulk_' || $1, 'l_' || $1 || g, now() - interval '1 minute'
                 from generate_series(1, $2) g")
        .bind(repo).bind(n).execute(pool).await.unwrap();
    sqlx::query("insert into leases (id, task_id, worker_id, attempt)
                 select 'l_' || $1 || g, 't_' || $1 || g, 'w_bulk_' || $1, 0 from generate_series(1, $2) g")
        .bind(repo).bind(n).execute(pool).await.unwrap();
}

#[sqlx::test]
async fn two_sweeps_at_once_requeue_each_lease_once(opts: PgPoolOptions, conn: PgConnectOptions) {
    let a = opts
        .clone()
        .max_connections(4)
        .connect_with(conn.clone())
        .await
        .unwrap();
    let b = opts.max_connections(4).connect_with(conn).await.unwrap();
    seed_expired(&a, 5_000, "bulk").await;
    let (da, db) = (Db::from(a.clone()), Db::from(b.clone()));
    let (ra, rb) = tokio::join!(
        lease_expiry::run(&da, Backoff::NONE),
        lease_expiry::run(&db, Backoff::NONE)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(
        ra.leases + rb.leases,
        5_000,
        "each lease expired exactly once ({} + {})",
        ra.leases,
        rb.leases
    );
    let dupes: i64 = sqlx::query_scalar(
        "select count(*) from (select lease_id from audit_events where kind = 'lease_expired' group by lease_id having count(*) > 1) d",
    ).fetch_one(&a).await.unwrap();
    assert_eq!(dupes, 0);
    let events: i64 =
        sqlx::query_scalar("select count(*) from audit_events where kind = 'task_requeued'")
            .fetch_one(&a)
            .await
            .unwrap();
    assert_eq!(events, 5_000);
    let ready: i64 =
        sqlx::query_scalar("select count(*) from tasks where status = 'ready' and attempt = 1")
            .fetch_one(&a)
            .await
            .unwrap();
    assert_eq!(ready, 5_000);

    // the offline duty likewise
    sqlx::query("update workers set last_heartbeat = now() - interval '1 hour'")
        .execute(&a)
        .await
        .unwrap();
    sqlx::query("update tasks set status = 'in_progress', worker_id = 'w_bulk_bulk', lease_id = 'l2_' || id,
                 lease_expires_at = now() + interval '1 hour' where status = 'ready'").execute(&a).await.unwrap();
    sqlx::query("insert into leases (id, task_id, worker_id, attempt) select lease_id, id, worker_id, 1 from tasks").execute(&a).await.unwrap();
    let t = Duration::from_secs(60);
    let (da, db) = (Db::from(a.clone()), Db::from(b.clone()));
    let (oa, ob) = tokio::join!(
        offline_workers::run(&da, t, Backoff::NONE),
        offline_workers::run(&db, t, Backoff::NONE)
    );
    let (oa, ob) = (oa.unwrap(), ob.unwrap());
    assert_eq!(oa.workers + ob.workers, 1);
    assert_eq!(oa.requeued + ob.requeued, 5_000);
    let offline_events: i64 =
        sqlx::query_scalar("select count(*) from audit_events where kind = 'worker_offline'")
            .fetch_one(&a)
            .await
            .unwrap();
    assert_eq!(offline_events, 1);
    let requeues: i64 =
        sqlx::query_scalar("select count(*) from audit_events where reason = 'worker_offline'")
            .fetch_one(&a)
            .await
            .unwrap();
    assert_eq!(requeues, 5_000);
}

#[sqlx::test]
async fn claims_keep_flowing_while_a_sweep_requeues_100k_leases(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let (app, _stop) = {
        let pool = opts
            .clone()
            .max_connections(10)
            .connect_with(conn.clone())
            .await
            .unwrap();
        (spawn_app(pool).await, ())
    };
    let sweeper = opts.max_connections(2).connect_with(conn).await.unwrap();
    seed_expired(&app.pool, 100_000, "bulk").await;
    app.create_repo("live", 10_000, false).await;
    for _ in 0..4 {
        app.create_tasks(
            (0..500)
                .map(|i| json!({"repo": "live", "title": format!("{i}")}))
                .collect(),
        )
        .await;
    }
    let workers: Vec<Worker> =
        futures::future::join_all((0..20).map(|i| app.register_owned(format!("c{i}")))).await;

    let sweep = tokio::spawn(async move {
        let started = Instant::now();
        let r = lease_expiry::run(&Db::from(sweeper.clone()), Backoff::NONE)
            .await
            .unwrap();
        (r, started.elapsed())
    });
    let mut latencies = vec![];
    let mut claimed = 0usize;
    let mut rounds = 0;
    while !sweep.is_finished() {
        for (d, n) in poll_round(&app, &workers).await {
            latencies.push(d);
            claimed += n;
        }
        rounds += 1;
    }
    let (report, took) = sweep.await.unwrap();
    assert_eq!(report.leases, 100_000);
    assert!(claimed > 0, "claims were served while the sweep ran");
    // the same load with no sweep running, for comparison
    let mut baseline = vec![];
    for _ in 0..rounds {
        baseline.extend(poll_round(&app, &workers).await.into_iter().map(|(d, _)| d));
    }
    let pct = |v: &mut Vec<Duration>, q: f64| {
        v.sort();
        v[((v.len() - 1) as f64 * q) as usize]
    };
    println!(
        "100k sweep: {:.2}s; during it {} polls claimed {claimed} tasks; poll latency p50 {:?} p99 {:?} \
         (same load without a sweep: p50 {:?} p99 {:?})",
        took.as_secs_f64(),
        latencies.len(),
        pct(&mut latencies, 0.5),
        pct(&mut latencies, 0.99),
        pct(&mut baseline, 0.5),
        pct(&mut baseline, 0.99),
    );
    // every bulk lease expired exactly once (pollers may since have claimed the requeued tasks)
    let expired: i64 = sqlx::query_scalar(
        "select count(distinct lease_id) from audit_events where kind = 'lease_expired'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(expired, 100_000);
    let overdue: i64 = sqlx::query_scalar(
        "select count(*) from tasks where status in ('leased', 'in_progress', 'blocked') and lease_expires_at < now()",
    ).fetch_one(&app.pool).await.unwrap();
    assert_eq!(overdue, 0);
}

/// One poll by each worker at once; each completes what it got. Returns (poll latency, claimed).
async fn poll_round(app: &TestApp, workers: &[Worker]) -> Vec<(Duration, usize)> {
    let polls = workers.iter().map(|w| async move {
        let t = Instant::now();
        let leases = app.poll(w).await;
        let took = t.elapsed();
        for l in &leases {
            let task = l["task_id"].as_str().unwrap();
            app.report(w, task, json!({"status": "completed"}))
                .await
                .expect(StatusCode::OK);
        }
        (took, leases.len())
    });
    futures::future::join_all(polls).await
}

/// Signs of life are coalesced per replica and written once per interval (a twentieth of
/// the heartbeat timeout): a worker that keeps polling stays online through many offline
/// sweeps, its `last_heartbeat` stays recent, and one that falls silent still goes offline.
#[sqlx::test]
async fn coalesced_signs_of_life_keep_a_polling_worker_online(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let (app, _stop) =
        app_with_scheduler(opts, conn, Duration::from_secs(60), Duration::from_secs(2)).await;
    app.create_repo("r", 5, false).await;
    let busy = app.register("busy", &[], 5, 2).await;
    let quiet = app.register("quiet", &[], 5, 2).await;
    // six heartbeat timeouts, the offline sweep every 300 ms
    for _ in 0..24 {
        app.poll(&busy).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (online, age): (bool, f64) = sqlx::query_as(
            "select online, extract(epoch from now() - last_heartbeat)::float8
             from workers where id = $1",
        )
        .bind(&busy.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert!(online, "a polling worker was marked offline");
        // within the heartbeat timeout (what the offline sweep judges by), however slow
        // the machine; written every 100 ms when it is not
        assert!(age < 2.0, "its sign of life is {age:.2} s old");
    }
    let quiet_online: bool = sqlx::query_scalar("select online from workers where id = $1")
        .bind(&quiet.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!quiet_online, "a silent worker stays offline");
    // and back at once with its request, audited once
    app.poll(&quiet).await;
    let back: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where kind = 'worker_online' and worker_id = $1",
    )
    .bind(&quiet.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(back, 1);
    assert_invariants(&app.pool).await;
}
