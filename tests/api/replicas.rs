//! Several replicas as real processes: one leader at a time, failover on kill -9 and on
//! SIGTERM, and a restarted replica standing by.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

use crate::support::replicas::*;
use crate::support::*;

#[sqlx::test]
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
    let status = leaving.wait().await;
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

#[sqlx::test]
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
    eventually(
        "the old leader notices it lost the lock",
        ELECTION * 6,
        || lost_leadership(&http, old),
    )
    .await;
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
