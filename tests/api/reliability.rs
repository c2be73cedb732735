//! Defects found by review and reproduction: each test failed before its fix.

use owp_pool::domain::retry::Backoff;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::support::*;

/// A poll that waited on its worker's row lock grants a lease whose transaction started
/// before a lease that was granted and ended meanwhile. Reports must end the lease they
/// belong to, and the task must stay claimable for everyone.
#[sqlx::test]
async fn a_claim_that_waited_for_its_worker_does_not_poison_the_task(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 3, false).await;
    let x = app.create_task(json!({"repo": "r", "title": "X"})).await;
    let w1 = app.register("w1", &[], 5, 2).await;
    let w2 = app.register("w2", &[], 5, 2).await;

    // hold W2's row: its poll begins its transaction, then waits for the row
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("select 1 from workers where id = $1 for update")
        .bind(&w2.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let (late, ()) = tokio::join!(app.poll(&w2), async {
        until_a_request_waits_on_a_lock(&pool).await;
        let early = app.poll(&w1).await;
        assert_eq!(early[0]["task_id"], x.as_str());
        app.report(&w1, &x, json!({"status": "released"}))
            .await
            .expect(reqwest::StatusCode::OK);
        blocker.commit().await.unwrap();
    });
    assert_eq!(
        late[0]["task_id"],
        x.as_str(),
        "W2 claims X after W1 let it go"
    );
    app.report(&w2, &x, json!({"status": "released"}))
        .await
        .expect(reqwest::StatusCode::OK);
    assert_invariants(&pool).await;

    // the task is claimable again, for either worker, and its life goes on
    let again = app.poll(&w1).await;
    assert_eq!(again[0]["task_id"], x.as_str());
    app.report(&w1, &x, json!({"status": "completed"}))
        .await
        .expect(reqwest::StatusCode::OK);
    assert_eq!(app.task_row(&x).await.0, "completed");
    assert_invariants(&pool).await;
}

/// A task row that a bug left inconsistent (ready, yet with a live lease row) must not
/// fail every poll: the claim passes over it and grants the next task.
#[sqlx::test]
async fn one_inconsistent_task_never_fails_every_poll(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 5, false).await;
    let bad = app
        .create_task(json!({"repo": "r", "title": "bad", "priority": 99}))
        .await;
    let good = app.create_task(json!({"repo": "r", "title": "good"})).await;
    let w = app.register("w", &[], 5, 2).await;
    let other = app.register("other", &[], 5, 2).await;
    sqlx::query(
        "insert into leases (id, task_id, worker_id, attempt) values ('l_stray', $1, $2, 0)",
    )
    .bind(&bad)
    .bind(&other.id)
    .execute(&pool)
    .await
    .unwrap();
    let leases = app.poll(&w).await;
    let ids: Vec<&str> = leases
        .iter()
        .map(|l| l["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [good.as_str()], "the inconsistent task is passed over");
    assert_eq!(app.task_row(&bad).await.0, "ready");
}

/// Errors that mean "try again" (here: a database that turned read-only, as after a
/// failover) answer 503 `unavailable` with `Retry-After`, not 500.
#[sqlx::test]
async fn a_read_only_database_answers_503_with_retry_after(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let read_only = conn.options([("default_transaction_read_only", "on")]);
    let app = spawn_app(opts.connect_with(read_only).await.unwrap()).await;
    let resp = app
        .http
        .post(format!("{}/v1/workers/register", app.base))
        .json(&json!({"name": "late"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await;
    let text = metrics.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"owp_db_retryable_errors_total{sqlstate="25006"}"#),
        "counted by SQLSTATE"
    );
}

/// A setting that cannot work stops the server at start with a message naming it.
#[sqlx::test]
async fn nonsense_settings_stop_the_server_at_start(_o: PgPoolOptions, conn: PgConnectOptions) {
    let url = replicas::database_url(&conn);
    for (name, value) in [
        ("OWP_SWEEP_INTERVAL", "0s"),
        ("OWP_LEASE_TTL", "1000years"),
        ("OWP_ELECTION_INTERVAL", "0ms"),
    ] {
        let mut r = replicas::start_replica(&url, "nonsense", &[(name, value)]);
        let status = r.wait().await;
        assert!(!status.success(), "{name}={value} was accepted");
        let log = r.log();
        assert!(log.contains(name), "{name} not named in: {log}");
    }
}

/// A worker whose request is bringing it back online while the offline sweep runs keeps
/// its leases and is charged no attempt.
#[sqlx::test]
async fn a_worker_coming_back_during_the_offline_sweep_keeps_its_leases(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 3, false).await;
    let t = app.create_task(json!({"repo": "r", "title": "kept"})).await;
    let w = app.register("w", &[], 5, 2).await;
    assert_eq!(app.poll(&w).await.len(), 1);
    // the sweep marked it offline a moment ago...
    sqlx::query("update workers set online = false, last_heartbeat = now() - interval '1 hour' where id = $1")
        .bind(&w.id)
        .execute(&pool)
        .await
        .unwrap();
    // ...and now its request is bringing it back, not yet committed
    let mut returning = pool.begin().await.unwrap();
    sqlx::query("update workers set online = true, last_heartbeat = now() where id = $1")
        .bind(&w.id)
        .execute(&mut *returning)
        .await
        .unwrap();
    let swept = owp_pool::scheduler::offline_workers::run(
        &owp_pool::store::Db::from(pool.clone()),
        Duration::from_secs(300),
        Backoff::NONE,
    )
    .await
    .unwrap();
    returning.commit().await.unwrap();
    assert_eq!(swept.requeued + swept.failed, 0, "{swept:?}");
    assert_eq!(
        app.task_row(&t).await,
        ("leased".into(), 0, Some(w.id.clone()))
    );
    assert_eq!(
        app.poll(&w).await.len(),
        1,
        "the worker still holds its lease"
    );
    assert_invariants(&pool).await;
}

/// Turning area locks on for a repo with an open task in an area locks that area at once;
/// turning them on while an area has two open tasks is refused, so I5 holds whatever the
/// order of configuration changes.
#[sqlx::test]
async fn area_locks_turned_on_late_still_allow_one_open_task_per_area(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 5, false).await;
    let tasks = app
        .create_tasks(vec![
            json!({"repo": "r", "title": "a1", "area": "a", "priority": 3}),
            json!({"repo": "r", "title": "a2", "area": "a", "priority": 2}),
            json!({"repo": "r", "title": "a3", "area": "a", "priority": 1}),
        ])
        .await;
    let w1 = app.register("w1", &[], 5, 1).await;
    let w2 = app.register("w2", &[], 5, 1).await;
    let w3 = app.register("w3", &[], 5, 1).await;
    assert_eq!(app.poll(&w1).await[0]["task_id"], tasks[0].as_str());
    let on = json!({"repo": "r", "max_open_prs": 5, "area_locks_enabled": true});
    app.admin(reqwest::Method::POST, "/v1/admin/repos", Some(on.clone()))
        .await
        .expect(reqwest::StatusCode::OK);
    assert!(app.poll(&w2).await.is_empty(), "area a is held by a1");
    assert_invariants(&pool).await;

    // off again: a second task of the area may open; then on is refused until one is done
    let off = json!({"repo": "r", "max_open_prs": 5, "area_locks_enabled": false});
    app.admin(reqwest::Method::POST, "/v1/admin/repos", Some(off))
        .await
        .expect(reqwest::StatusCode::OK);
    assert_eq!(app.poll(&w2).await[0]["task_id"], tasks[1].as_str());
    let e = app
        .admin(reqwest::Method::POST, "/v1/admin/repos", Some(on.clone()))
        .await
        .expect_error(reqwest::StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "areas_open_twice: a");
    app.report(&w2, &tasks[1], json!({"status": "completed"}))
        .await
        .expect(reqwest::StatusCode::OK);
    app.admin(reqwest::Method::POST, "/v1/admin/repos", Some(on))
        .await
        .expect(reqwest::StatusCode::OK);
    assert!(app.poll(&w3).await.is_empty(), "area a is still held by a1");
    assert_invariants(&pool).await;
}

/// A worker marked offline that comes back (here with ten requests at once) has its return
/// recorded: exactly one `worker_online` event, in the transaction that changed the flag.
#[sqlx::test]
async fn a_worker_coming_back_online_is_audited_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let w = app.register("w", &[], 5, 2).await;
    sqlx::query("update workers set last_heartbeat = now() - interval '1 hour' where id = $1")
        .bind(&w.id)
        .execute(&pool)
        .await
        .unwrap();
    let swept = owp_pool::scheduler::offline_workers::run(
        &owp_pool::store::Db::from(pool.clone()),
        Duration::from_secs(300),
        Backoff::NONE,
    )
    .await
    .unwrap();
    assert_eq!(swept.workers, 1);
    assert_invariants(&pool).await;
    let requests = (0..10).map(|i| {
        let (app, w) = (&app, &w);
        async move {
            if i % 2 == 0 {
                app.poll(w).await;
            } else {
                app.as_worker(
                    w,
                    reqwest::Method::POST,
                    "/v1/workers/heartbeat",
                    Some(json!({})),
                )
                .await
                .expect(reqwest::StatusCode::OK);
            }
        }
    });
    futures::future::join_all(requests).await;
    let back: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where worker_id = $1 and kind = 'worker_online'",
    )
    .bind(&w.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(back, 1);
    assert_eq!(app.state().await["workers_online"], 1);
    assert_invariants(&pool).await;
}

/// A worker whose lease expired and that got the task back must name the lease a report
/// is about: a late report of its first attempt never lands on the second.
#[sqlx::test]
async fn a_late_report_of_an_old_attempt_never_lands_on_the_new_one(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("r", 3, false).await;
    let t = app
        .create_task(json!({"repo": "r", "title": "twice"}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    let first = app.poll(&w).await[0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    // the first attempt is slow: its lease runs out and the sweep ends it
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(&t)
        .execute(&pool)
        .await
        .unwrap();
    owp_pool::scheduler::lease_expiry::run(&owp_pool::store::Db::from(pool.clone()), Backoff::NONE)
        .await
        .unwrap();
    let second = app.poll(&w).await[0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);

    // the first attempt's late "completed", without a lease id: refused, nothing changes
    let e = app
        .report(&w, &t, json!({"status": "completed"}))
        .await
        .expect_error(reqwest::StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"]
            .as_str()
            .unwrap()
            .starts_with("lease_id: required"),
        "{e}"
    );
    // with its own lease id: lease_lost
    let e = app
        .report(&w, &t, json!({"status": "completed", "lease_id": first}))
        .await
        .expect_error(reqwest::StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "lease_lost");
    assert_eq!(
        app.task_row(&t).await,
        ("leased".into(), 1, Some(w.id.clone()))
    );
    // the second attempt's report, naming its lease, applies
    app.report(&w, &t, json!({"status": "completed", "lease_id": second}))
        .await
        .expect(reqwest::StatusCode::OK);
    assert_eq!(app.task_row(&t).await.0, "completed");
    assert_invariants(&pool).await;
}

fn fast_scheduler(replica: &str) -> owp_pool::config::Settings {
    owp_pool::config::Settings {
        replica_id: replica.into(),
        election_interval: Duration::from_millis(100),
        sweep_interval: Duration::from_millis(100),
        ..test_settings()
    }
}

fn leading(ctx: &owp_pool::app::AppContext) -> bool {
    ctx.is_leader.load(std::sync::atomic::Ordering::Relaxed)
}

/// A leader whose request pool is broken holds a healthy lock session, yet cannot do a
/// leader's work: after a few failed sweeps it steps down and a healthy replica leads.
#[sqlx::test]
async fn a_leader_that_cannot_sweep_steps_down_for_a_healthy_replica(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    use owp_pool::app::AppContext;
    use owp_pool::auth::TokenSet;
    let broken_pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy_with(conn.clone().port(1));
    let broken = AppContext::new(
        broken_pool,
        fast_scheduler("broken"),
        TokenSet::new([ADMIN]),
        owp_pool::auth::Registration::Closed,
    );
    owp_pool::scheduler::spawn_elector(&broken, conn.clone());
    eventually(
        "the broken replica leads",
        Duration::from_secs(10),
        || async { leading(&broken) },
    )
    .await;

    let pool = opts.connect_with(conn.clone()).await.unwrap();
    let healthy = AppContext::new(
        pool.clone(),
        fast_scheduler("healthy"),
        TokenSet::new([ADMIN]),
        owp_pool::auth::Registration::Closed,
    );
    owp_pool::scheduler::spawn_elector(&healthy, conn);
    eventually(
        "the healthy replica takes over",
        Duration::from_secs(20),
        || async { leading(&healthy) && !leading(&broken) },
    )
    .await;
    eventually(
        "the healthy leader records itself and sweeps",
        Duration::from_secs(10),
        || async {
            let (leader, swept): (Option<String>, bool) =
                sqlx::query_as("select leader, last_sweep_at is not null from scheduler_state")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            leader.as_deref() == Some("healthy") && swept
        },
    )
    .await;
}

/// Each duty runs on its own: a lease-expiry duty that fails (here a trigger refuses to
/// end expired leases) does not keep the offline duty from requeuing a vanished worker's
/// lease.
#[sqlx::test]
async fn a_failing_duty_does_not_stop_the_others(opts: PgPoolOptions, conn: PgConnectOptions) {
    let pool = opts.connect_with(conn.clone()).await.unwrap();
    let app = spawn_app_with(pool.clone(), fast_scheduler("solo")).await;
    app.create_repo("r", 5, false).await;
    let slow = app
        .create_task(json!({"repo": "r", "title": "slow", "priority": 2}))
        .await;
    let gone = app
        .create_task(json!({"repo": "r", "title": "gone", "priority": 1}))
        .await;
    let ws = app.register("slow", &[], 5, 1).await;
    let wg = app.register("gone", &[], 5, 1).await;
    assert_eq!(app.poll(&ws).await[0]["task_id"], slow.as_str());
    assert_eq!(app.poll(&wg).await[0]["task_id"], gone.as_str());
    sqlx::query(
        "create function refuse_expiry() returns trigger language plpgsql as $$
         begin
           if new.end_reason = 'lease_expired' then raise exception 'injected fault'; end if;
           return new;
         end $$",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("create trigger refuse_expiry before update on leases for each row execute function refuse_expiry()")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(&slow)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("update workers set last_heartbeat = now() - interval '1 hour' where id = $1")
        .bind(&wg.id)
        .execute(&pool)
        .await
        .unwrap();
    owp_pool::scheduler::spawn_elector(&app.ctx, conn);
    eventually(
        "the vanished worker's lease is requeued",
        Duration::from_secs(10),
        || async { app.task_row(&gone).await.0 == "ready" },
    )
    .await;
    assert_eq!(
        app.task_row(&slow).await.0,
        "leased",
        "expiry keeps failing"
    );
    assert!(
        leading(&app.ctx),
        "a replica whose other duties work keeps leading"
    );
}

/// Three replicas start at once on an empty database whose migration table is locked for
/// longer than their statement timeout: migrations wait for the lock instead of timing
/// out, each is applied exactly once, and every replica comes up.
#[sqlx::test(migrations = false)]
async fn three_replicas_migrate_an_empty_database_at_once(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let pool = opts.connect_with(conn.clone()).await.unwrap();
    // sqlx's own table, as it creates it, held by a slow transaction
    sqlx::query(
        "create table _sqlx_migrations (version bigint primary key, description text not null,
         installed_on timestamptz not null default now(), success boolean not null,
         checksum bytea not null, execution_time bigint not null)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut slow = pool.begin().await.unwrap();
    sqlx::query("lock table _sqlx_migrations in access exclusive mode")
        .execute(&mut *slow)
        .await
        .unwrap();
    let url = replicas::database_url(&conn);
    let env = [("OWP_DB_STATEMENT_TIMEOUT", "1s")];
    let rs: Vec<_> = ["m1", "m2", "m3"]
        .iter()
        .map(|id| replicas::start_replica(&url, id, &env))
        .collect();
    until_a_request_waits_on_a_lock(&pool).await;
    // a migration lock held longer than the replicas' statement timeout
    tokio::time::sleep(Duration::from_secs(2)).await;
    slow.commit().await.unwrap();
    let http = reqwest::Client::new();
    for r in &rs {
        replicas::wait_ready(&http, r).await;
    }
    let applied: Vec<(i64, i64)> = sqlx::query_as(
        "select version, count(*) from _sqlx_migrations where success group by version",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(applied.len(), owp_pool::store::MIGRATOR.iter().count());
    assert!(applied.iter().all(|(_, n)| *n == 1), "{applied:?}");
}

/// sqlx's BEGIN is not cancel-safe on PostgreSQL (sqlx#4393): a caller dropped during the
/// BEGIN round trip (a client that hangs up, a request timeout) could hand the connection
/// back to the pool inside an open transaction, where the next request's writes would run
/// and be lost. Cancels hundreds of begins at random points on a one-connection pool and
/// checks the connection is never left in a transaction.
#[sqlx::test]
async fn a_cancelled_begin_never_leaves_a_pooled_connection_in_a_transaction(
    _o: sqlx::postgres::PgPoolOptions,
    conn: sqlx::postgres::PgConnectOptions,
) {
    use rand::Rng;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(conn)
        .await
        .unwrap();
    let mut cancelled = 0;
    for _ in 0..400 {
        // poll the BEGIN a random number of times, the database working in between, then
        // drop it: timers are too coarse (1 ms) to cut inside a sub-millisecond round trip
        let polls = rand::rng().random_range(1..5);
        let db = owp_pool::store::Db::from(pool.clone());
        let mut begin = Box::pin(owp_pool::store::begin(&db));
        let mut done = false;
        for _ in 0..polls {
            if futures::poll!(begin.as_mut()).is_ready() {
                done = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(
                rand::rng().random_range(0..60),
            ));
            tokio::task::yield_now().await;
        }
        drop(begin);
        if !done {
            cancelled += 1;
        }
        // now() is the transaction's start: two statements apart see two times, unless a
        // leaked transaction holds them both
        let now = || sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("select now()");
        let first = now().fetch_one(&pool).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let second = now().fetch_one(&pool).await.unwrap();
        assert_ne!(
            first, second,
            "a cancelled BEGIN left the pooled connection in a transaction"
        );
    }
    assert!(
        cancelled > 50,
        "only {cancelled} begins were cancelled: the test cut too late"
    );
}

/// A handler dropped while its COMMIT is in flight (a client that hangs up, a request
/// timeout) must neither lose the work it had decided to keep nor send a stray ROLLBACK
/// after the COMMIT (sqlx's own `commit` does both). Cancels hundreds of commits at random
/// points on a one-connection pool: every row lands, and the connection is never left in
/// a transaction.
#[sqlx::test]
async fn a_cancelled_commit_still_lands_and_leaves_the_connection_clean(
    _o: sqlx::postgres::PgPoolOptions,
    conn: sqlx::postgres::PgConnectOptions,
) {
    use rand::Rng;
    // PostgreSQL's notices reach the log through sqlx: a stray ROLLBACK shows there
    let log = Captured::default();
    let sink = log.clone();
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_writer(move || sink.clone())
            .finish(),
    );
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(conn)
        .await
        .unwrap();
    sqlx::query("create table kept (n int primary key)")
        .execute(&pool)
        .await
        .unwrap();
    let mut cancelled = 0;
    for n in 0..300 {
        let mut tx = owp_pool::store::begin(&owp_pool::store::Db::from(pool.clone()))
            .await
            .unwrap();
        sqlx::query("insert into kept values ($1)")
            .bind(n)
            .execute(&mut *tx)
            .await
            .unwrap();
        let polls = rand::rng().random_range(1..4);
        let mut commit = Box::pin(owp_pool::store::commit(tx));
        let mut done = false;
        for _ in 0..polls {
            if futures::poll!(commit.as_mut()).is_ready() {
                done = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(
                rand::rng().random_range(0..60),
            ));
            tokio::task::yield_now().await;
        }
        drop(commit);
        if !done {
            cancelled += 1;
        }
        let now = || sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>("select now()");
        let first = now().fetch_one(&pool).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let second = now().fetch_one(&pool).await.unwrap();
        assert_ne!(
            first, second,
            "a cancelled COMMIT left the connection in a transaction"
        );
        let kept: i64 = sqlx::query_scalar("select count(*) from kept")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(kept, i64::from(n) + 1, "a commit that had started was lost");
    }
    assert!(
        cancelled > 50,
        "only {cancelled} commits were cancelled: the test cut too late"
    );
    let log = log.text();
    assert!(
        !log.contains("no transaction in progress"),
        "a ROLLBACK was sent after a COMMIT:\n{log}"
    );
}

/// Log lines written by a test's own subscriber.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
