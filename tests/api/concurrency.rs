//! One hammer test per invariant: 50+ workers through two replicas over 500+ tasks.
//! Each also passes the full checker; each scenario is shaped to press on its invariant.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::fleet::*;
use crate::support::*;

const DEADLINE: Duration = Duration::from_secs(240);

#[sqlx::test]
async fn a_task_never_has_two_live_leases_under_contention(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // I1: many workers, generous budgets, so every poll races for the same top tasks
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 4, |_| 100, 500, 0).await;
    fleet
        .register(60, |i| (10 + (i % 3) as i64, 1 + (i % 3) as i64))
        .await;
    let o = fleet.run(false, 1, DEADLINE).await;
    fleet.assert_all_good(&o).await;
}

#[sqlx::test]
async fn a_worker_never_exceeds_its_capacity_under_contention(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // I2: small capacities against tasks of 1-4 points, three concurrent pollers per worker
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 5, |_| 30, 500, 0).await;
    fleet
        .register(50, |i| (4 + (i % 4) as i64, 2 + (i % 2) as i64))
        .await;
    let o = fleet.run(false, 3, DEADLINE).await;
    fleet.assert_all_good(&o).await;
}

#[sqlx::test]
async fn workers_only_get_tasks_they_have_the_skills_for(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // I3: every skill mix against every requirement mix
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 5, |_| 20, 500, 0).await;
    fleet.register(52, |_| (10, 3)).await;
    let o = fleet.run(false, 1, DEADLINE).await;
    fleet.assert_all_good(&o).await;
    let skill_misses: i64 = sqlx::query_scalar(
        "select count(*) from leases l join tasks t on t.id = l.task_id join workers w on w.id = l.worker_id
         where not t.required_skills <@ w.skills",
    )
    .fetch_one(&fleet.pool).await.unwrap();
    assert_eq!(skill_misses, 0);
}

#[sqlx::test]
async fn claim_never_exceeds_repo_budget_under_contention(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // I4: budgets of 1-3 across 8 repos, 50 workers
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 8, |r| 1 + (r % 3) as i64, 500, 0).await;
    fleet.register(50, |_| (10, 3)).await;
    let o = fleet.run(false, 1, DEADLINE).await;
    fleet.assert_all_good(&o).await;
}

#[sqlx::test]
async fn kept_open_counts_stay_exact_while_folded_under_contention(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // The polls' free-slot hint (migration 0012): budgets of 1-3 across 8 repos, while two
    // compactors (as on two replicas) fold the changes every few milliseconds. The checker,
    // run all along by the fleet, compares base + changes with the open tasks in each
    // snapshot; at the end every change is folded and nothing is open.
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 8, |r| 1 + (r % 3) as i64, 500, 0).await;
    fleet.register(50, |_| (10, 3)).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let compactors: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop) = (fleet.pool.clone(), stop.clone());
            tokio::spawn(async move {
                let mut folded = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    folded += owp_pool::store::open_counts::compact(&owp_pool::store::Db::from(
                        pool.clone(),
                    ))
                    .await
                    .unwrap();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                folded
            })
        })
        .collect();
    let o = fleet.run(false, 1, DEADLINE).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut folded = 0;
    for c in compactors {
        folded += c.await.unwrap();
    }
    assert!(
        folded > 100,
        "the compactors folded changes meanwhile ({folded})"
    );
    fleet.assert_all_good(&o).await;
    owp_pool::store::open_counts::compact(&owp_pool::store::Db::from(fleet.pool.clone()))
        .await
        .unwrap();
    let (changes, open): (i64, i64) = sqlx::query_as(
        "select (select count(*) from repo_open_changes), (select coalesce(sum(open), 0)::int8 from repo_open_counts)",
    )
    .fetch_one(&fleet.pool)
    .await
    .unwrap();
    assert_eq!((changes, open), (0, 0));
}

#[sqlx::test]
async fn the_checker_sees_a_kept_open_count_out_of_step(pool: sqlx::PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("drift", 5, false).await;
    app.create_tasks(vec![json!({"repo": "drift", "title": "t"})])
        .await;
    let w = app.register("w", &[], 10, 2).await;
    assert_eq!(app.poll(&w).await.len(), 1);
    assert_invariants(&app.pool).await;
    sqlx::query("insert into repo_open_changes (repo, delta) values ('drift', 1)")
        .execute(&app.pool)
        .await
        .unwrap();
    let v = owp_pool::store::invariants::check(&app.pool).await.unwrap();
    assert_eq!(
        v,
        vec!["I4 repo whose kept open-task count differs from its open tasks: drift (kept 2, open 1)".to_string()]
    );
}

#[sqlx::test]
async fn one_open_task_per_area_under_contention(opts: PgPoolOptions, conn: PgConnectOptions) {
    // I5: few areas shared by many tasks, budgets large enough that areas are the limit
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 3, |_| 50, 510, 4).await;
    fleet.register(50, |_| (10, 3)).await;
    let o = fleet.run(false, 1, DEADLINE).await;
    fleet.assert_all_good(&o).await;
}

#[sqlx::test]
async fn paused_workers_get_no_new_leases_under_contention(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    // I8: a fifth of the fleet toggles pause while everyone polls
    let mut fleet = Fleet::start(opts, conn, 2).await;
    seed_tasks(&fleet.replicas[0], 5, |_| 20, 500, 0).await;
    fleet.register(50, |_| (10, 3)).await;
    let o = fleet.run(true, 1, DEADLINE).await;
    assert!(
        o.claimed_while_paused.is_empty(),
        "leases granted after a pause was acknowledged: {:?}",
        o.claimed_while_paused
    );
    fleet.assert_all_good(&o).await;
}

#[sqlx::test]
async fn twenty_parallel_polls_from_one_worker_respect_its_capacity(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let fleet = Fleet::start(opts, conn, 2).await;
    let app = &fleet.replicas[0];
    app.create_repo("r", 1000, false).await;
    app.create_tasks(
        (0..100)
            .map(|i| json!({"repo": "r", "title": format!("{i}"), "estimate_points": 1 + i % 3}))
            .collect(),
    )
    .await;
    let w = app.register("greedy", &[], 7, 4).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut handles = vec![];
    for i in 0..20 {
        let replica = &fleet.replicas[i % 2];
        let (base, http, token, barrier) = (
            replica.base.clone(),
            replica.http.clone(),
            w.token.clone(),
            barrier.clone(),
        );
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            let r = http
                .get(format!("{base}/v1/work"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<serde_json::Value>().await.unwrap()
        }));
    }
    let mut all = std::collections::HashSet::new();
    for h in handles {
        let body = h.await.unwrap();
        let leases = body["leases"].as_array().unwrap();
        let points: i64 = leases
            .iter()
            .map(|l| l["estimate_points"].as_i64().unwrap())
            .sum();
        assert!(
            leases.len() <= 4 && points <= 7,
            "one answer broke capacity: {} leases, {points} points",
            leases.len()
        );
        for l in leases {
            all.insert(l["lease_id"].as_str().unwrap().to_string());
        }
    }
    let (n, points): (i64, i64) = sqlx::query_as(
        "select count(*), coalesce(sum(estimate_points), 0)::bigint from tasks where worker_id = $1 and status = 'leased'",
    )
    .bind(&w.id).fetch_one(&fleet.pool).await.unwrap();
    assert!(n <= 4 && points <= 7, "{n} leases, {points} points");
    assert!(n >= 2, "the polls did claim");
    assert_eq!(
        all.len() as i64,
        n,
        "every granted lease was returned, none beyond"
    );
    let state = app
        .admin(Method::GET, "/v1/admin/state", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(state["tasks_leased"], n);
    assert_invariants(&fleet.pool).await;
}
