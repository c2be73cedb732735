//! The database goes away under a running app: 503 `unavailable` quickly, liveness stays up,
//! and the app recovers by itself when the database returns. Uses a PostgreSQL instance
//! this test owns (initdb into a temp dir, own port), never the shared one.

use std::time::{Duration, Instant};

use owp_pool::store::{self, PoolSettings};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::private_pg::OwnPostgres;
use crate::support::*;

#[tokio::test]
async fn a_database_outage_answers_503_and_heals_by_itself() {
    let pg = OwnPostgres::init();
    let settings = PoolSettings {
        max_connections: 5,
        acquire_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(5),
        through_pooler: false,
    };
    let pool = store::connect_lazy(&pg.url(), &settings).unwrap();
    store::MIGRATOR.run(pool.pool()).await.unwrap();
    let settings = owp_pool::config::Settings {
        gauges_interval: Duration::from_millis(100),
        ..test_settings()
    };
    let app = spawn_app_with(pool, settings).await;
    let gauges = owp_pool::scheduler::pool_gauges::run(app.ctx.clone());
    app.ctx.tasks.spawn("pool_gauges", gauges);
    let w = app.register("survivor", &[], 5, 2).await;
    app.create_repo("r", 3, false).await;

    pg.stop();
    let started = Instant::now();
    app.as_worker(&w, Method::POST, "/v1/workers/heartbeat", Some(json!({})))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    let took = started.elapsed();
    let poll = app.as_worker(&w, Method::GET, "/v1/work", None).await;
    assert_eq!(poll.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(poll.body["suggestion"].as_str().unwrap().contains("retry"));
    app.call(Method::GET, "/healthz", &[], None)
        .await
        .expect(StatusCode::OK);
    app.call(Method::GET, "/readyz", &[], None)
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    app.admin(Method::POST, "/v1/admin/repos", Some(json!({"repo": "x"})))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    eventually(
        "metrics served while the database is down, saying so",
        Duration::from_secs(10),
        || async {
            let metrics = app.http.get(format!("{}/metrics", app.base)).send().await;
            let metrics = metrics.expect("metrics answer while the database is down");
            assert_eq!(metrics.status(), StatusCode::OK);
            metrics.text().await.unwrap().contains("owp_db_up 0")
        },
    )
    .await;

    pg.start();
    let back = Instant::now();
    eventually("the app recovers", Duration::from_secs(30), || async {
        let a = app
            .as_worker(&w, Method::POST, "/v1/workers/heartbeat", Some(json!({})))
            .await;
        assert!(
            [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(&a.status),
            "only 503 while recovering: {:?}",
            a.body
        );
        a.status == StatusCode::OK
    })
    .await;
    app.call(Method::GET, "/readyz", &[], None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.state().await["workers_total"], 1, "nothing was lost");
    println!(
        "database down: first answer 503 after {took:?}; recovered {:?} after restart",
        back.elapsed()
    );
}
