//! Long polling (`GET /v1/work?wait=N`): a waiting poll holds no connection, is woken by
//! new work on its own replica or another one (or, when a signal is lost, by the fallback
//! check), and one task wakes a few polls, not the fleet.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::task::JoinHandle;

use owp_pool::long_poll::WakeCause;

use crate::support::eventually::eventually;
use crate::support::*;

/// Starts a long poll in the background; resolves to its leases.
fn long_poll(app: &TestApp, w: &Worker, wait: u32) -> JoinHandle<Vec<Value>> {
    let (http, base, token) = (app.http.clone(), app.base.clone(), w.token.clone());
    tokio::spawn(async move {
        let r = http
            .get(format!("{base}/v1/work?wait={wait}"))
            .header("authorization", format!("Bearer {token}"))
            .timeout(Duration::from_secs(90))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["leases"].as_array().unwrap().clone()
    })
}

async fn until_waiting(app: &TestApp, n: usize) {
    eventually(
        &format!("{n} polls waiting"),
        Duration::from_secs(20),
        || async { app.ctx.long_poll.waiting() == n },
    )
    .await;
}

#[sqlx::test]
async fn a_waiting_poll_gets_new_work_and_holds_no_connection(pool: PgPool) {
    // a request pool of 3 connections, and 30 polls waiting on it
    let small = PgPoolOptions::new()
        .max_connections(3)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let ctx = owp_pool::app::AppContext::new(
        small,
        test_settings(),
        owp_pool::auth::TokenSet::new([ADMIN]),
        owp_pool::auth::Registration::Open,
    );
    let app = spawn_ctx(ctx).await;
    app.create_repo("acme/r", 100, false).await;
    let ws: Vec<Worker> =
        futures::future::join_all((0..30).map(|i| app.register_owned(format!("w{i}")))).await;
    let polls: Vec<_> = ws.iter().map(|w| long_poll(&app, w, 30)).collect();
    until_waiting(&app, 30).await;
    // the pool is free for everyone else meanwhile
    for _ in 0..5 {
        app.state().await;
    }
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    eventually(
        "the task reaches a waiting poll",
        Duration::from_secs(20),
        || async { app.task_row(&t).await.0 == "leased" },
    )
    .await;
    let holder = app.task_row(&t).await.2.unwrap();
    let i = ws
        .iter()
        .position(|w| w.id == holder)
        .expect("one of the waiting workers");
    let leases = tokio::time::timeout(Duration::from_secs(20), polls.into_iter().nth(i).unwrap())
        .await
        .expect("the winner's poll returns")
        .unwrap();
    assert_eq!(leases[0]["task_id"], t.as_str());
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn one_task_wakes_a_few_polls_not_the_fleet(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 100, false).await;
    // one task at a time each
    let ws: Vec<Worker> = futures::future::join_all((0..40).map(|i| {
        let app = &app;
        async move { app.register(&format!("w{i}"), &[], 10, 1).await }
    }))
    .await;
    let mut polls: Vec<_> = ws.iter().map(|w| long_poll(&app, w, 30)).collect();
    until_waiting(&app, 40).await;
    let woken_before =
        app.ctx.long_poll.wakes(WakeCause::Local) + app.ctx.long_poll.wakes(WakeCause::Relay);
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "one"}))
        .await;
    eventually("one poll took it", Duration::from_secs(20), || async {
        app.task_row(&t).await.0 == "leased"
    })
    .await;
    // the others go back to waiting
    until_waiting(&app, 39).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let woken = app.ctx.long_poll.wakes(WakeCause::Local)
        + app.ctx.long_poll.wakes(WakeCause::Relay)
        - woken_before;
    // the creation wakes one, the winner passes it on, a poll that finds nothing passes it
    // on a few times: far from 40
    assert!(
        (1..=2 + owp_pool::long_poll::RELAYS as u64).contains(&woken),
        "{woken} polls woken for one task"
    );
    assert_eq!(polls.iter().filter(|p| p.is_finished()).count(), 1);

    // fairly: 39 more tasks, one each for the 39 still waiting
    app.create_tasks(
        (0..39)
            .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
            .collect(),
    )
    .await;
    let mut counts = Vec::new();
    for p in polls.drain(..) {
        counts.push(p.await.unwrap().len());
    }
    assert!(counts.iter().all(|n| *n == 1), "{counts:?}");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn work_made_on_another_replica_or_in_sql_reaches_a_waiting_poll(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app(pool.clone()).await;
    a.create_repo("acme/r", 10, false).await;
    let w = b.register("w", &[], 10, 5).await;
    // created through replica A; the poll waits on replica B. B's once-a-second fallback
    // races A's signal, and on a loaded machine may win a round: the signal must win one of
    // a few (each round's task is completed, so the next poll waits again)
    let mut heard = false;
    for round in 0..5 {
        let before = b.ctx.long_poll.wakes(WakeCause::Remote);
        let poll = long_poll(&b, &w, 30);
        until_waiting(&b, 1).await;
        let t = a
            .create_task(json!({"repo": "acme/r", "title": format!("via a {round}")}))
            .await;
        let leases = poll.await.unwrap();
        assert_eq!(leases.len(), 1);
        assert_eq!(leases[0]["task_id"], t.as_str());
        b.report(&w, &t, json!({"status": "completed"}))
            .await
            .expect(StatusCode::OK);
        if b.ctx.long_poll.wakes(WakeCause::Remote) > before {
            heard = true;
            break;
        }
    }
    assert!(heard, "B heard A's signal");

    // a task written straight into the database sends no signal: the fallback finds it.
    // A wake still in flight from the first task (A's second signal, a relay) may wake
    // this poll once; it finds nothing and waits again before the task is written.
    let poll = long_poll(&b, &w, 30);
    until_waiting(&b, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    until_waiting(&b, 1).await;
    let fallback_before = b.ctx.long_poll.wakes(WakeCause::Fallback);
    sqlx::raw_sql(
        "insert into tasks (id, repo, title, estimate_points) values ('t_sql', 'acme/r', 'from psql', 1);
         insert into audit_events (kind, task_id, repo, to_status, actor)
         values ('task_created', 't_sql', 'acme/r', 'ready', 'admin')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let leases = poll.await.unwrap();
    assert!(leases.iter().any(|l| l["task_id"] == "t_sql"), "{leases:?}");
    assert!(b.ctx.long_poll.wakes(WakeCause::Fallback) > fallback_before);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_poll_with_nothing_to_wait_for_is_answered_at_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    app.create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 10, 1).await;
    // it claims the task: answered at once
    let first = long_poll(&app, &w, 60);
    assert_eq!(first.await.unwrap().len(), 1);
    // its only place is taken: nothing to wait for
    let full = long_poll(&app, &w, 60);
    let leases = tokio::time::timeout(Duration::from_secs(20), full)
        .await
        .expect("a worker without free capacity does not wait")
        .unwrap();
    assert_eq!(leases.len(), 1);
    // paused by an admin: the same
    let idle = app.register("idle", &[], 10, 1).await;
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/pause", idle.id),
        None,
    )
    .await
    .expect(StatusCode::OK);
    let paused = long_poll(&app, &idle, 60);
    let leases = tokio::time::timeout(Duration::from_secs(20), paused)
        .await
        .expect("a paused worker does not wait")
        .unwrap();
    assert!(leases.is_empty());
    // and a waiting poll ends when the replica shuts down
    let free = app.register("free", &[], 10, 1).await;
    let waiting = long_poll(&app, &free, 60);
    until_waiting(&app, 1).await;
    app.ctx.stop();
    let leases = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("shutdown ends waiting polls")
        .unwrap();
    assert!(leases.is_empty());
}

/// An idle worker re-polling when nothing changed skips the claim transaction, but its
/// poll still lists its leases, still counts as a sign of life, and new work is claimed.
#[sqlx::test]
async fn a_repoll_with_nothing_new_still_lists_leases_and_keeps_the_worker_alive(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    let held = app
        .create_task(json!({"repo": "acme/r", "title": "held"}))
        .await;
    let w = app.register("w", &[], 10, 2).await;
    assert_eq!(long_poll(&app, &w, 1).await.unwrap().len(), 1);
    // room for one more, nothing to claim: this poll records an empty claim
    let leases = long_poll(&app, &w, 1).await.unwrap();
    assert_eq!(leases.len(), 1);
    sqlx::query("update workers set last_heartbeat = now() - interval '20 seconds' where id = $1")
        .bind(&w.id)
        .execute(&pool)
        .await
        .unwrap();
    let leases = long_poll(&app, &w, 1).await.unwrap();
    assert_eq!(leases.len(), 1, "the held lease is still listed");
    assert_eq!(leases[0]["task_id"], held.as_str());
    // written by the replica's next liveness flush (at most a second later)
    eventually(
        "the poll refreshed the worker's liveness",
        Duration::from_secs(10),
        || async {
            let age: f64 = sqlx::query_scalar(
                "select extract(epoch from now() - last_heartbeat)::float8 from workers where id = $1",
            )
            .bind(&w.id)
            .fetch_one(&pool)
            .await
            .unwrap();
            age < 10.0
        },
    )
    .await;
    // a worker gone offline meanwhile comes back through a full claim, with its event
    sqlx::query("update workers set online = false where id = $1")
        .bind(&w.id)
        .execute(&pool)
        .await
        .unwrap();
    long_poll(&app, &w, 1).await.unwrap();
    let online: bool = sqlx::query_scalar("select online from workers where id = $1")
        .bind(&w.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(online);
    // new work changes everything: the next poll claims it
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "new"}))
        .await;
    let leases = long_poll(&app, &w, 1).await.unwrap();
    assert!(
        leases.iter().any(|l| l["task_id"] == t.as_str()),
        "{leases:?}"
    );
}

#[sqlx::test]
async fn new_work_wakes_the_waiting_poll_of_the_best_reputation_first(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 100, false).await;
    let novice = app.register("novice", &[], 10, 5).await;
    let pro = app.register("pro", &[], 10, 5).await;
    // histories as the lease-end trigger counts them: many merged PRs, and many expiries
    for (w, delivered, expired, merged) in [(&pro, 40, 0, 30), (&novice, 2, 20, 0)] {
        sqlx::query(
            "insert into worker_reputation (worker_id, attempts, delivered, on_time, expired, prs_merged)
             values ($1, $2 + $3, $2, $2, $3, $4)",
        )
        .bind(w.id.as_str())
        .bind(delivered)
        .bind(expired)
        .bind(merged)
        .execute(&pool)
        .await
        .unwrap();
    }
    // a poll of each tells this replica their ranks (a first long poll learns it from its
    // first claim); then the novice waits longest, and the pro comes second
    app.poll(&novice).await;
    app.poll(&pro).await;
    let waiting_novice = long_poll(&app, &novice, 5);
    let idle = |w: &Worker| {
        let (app, id) = (&app, w.id.clone());
        async move { app.ctx.long_poll.is_idle(&id) }
    };
    eventually("the novice waits", Duration::from_secs(20), || {
        idle(&novice)
    })
    .await;
    let waiting_pro = long_poll(&app, &pro, 30);
    eventually("the pro waits", Duration::from_secs(20), || idle(&pro)).await;
    until_waiting(&app, 2).await;
    let task = app
        .create_task(json!({"repo": "acme/r", "title": "the one task"}))
        .await;
    let (got, novice_got) = (waiting_pro.await.unwrap(), waiting_novice.await.unwrap());
    assert_eq!(
        (ids(&got), ids(&novice_got)),
        (vec![task], vec![]),
        "the better reputation is woken first"
    );
}
