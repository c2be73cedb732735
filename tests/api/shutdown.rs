//! Graceful shutdown of the real binary: SIGTERM stops accepting, lets the in-flight request
//! finish, releases leadership, and exits 0.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::support::replicas::{database_url, is_leader, register, start_replica, wait_ready};
use crate::support::Worker;
use crate::support::{eventually, until_a_request_waits_on_a_lock};

#[sqlx::test]
async fn sigterm_drains_in_flight_requests_and_exits_cleanly(
    opts: PgPoolOptions,
    conn: PgConnectOptions,
) {
    let url = database_url(&conn);
    let pool = opts.connect_with(conn).await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut r = start_replica(&url, "draining", &[("OWP_SHUTDOWN_TIMEOUT", "20s")]);
    wait_ready(&http, &r).await;
    eventually(
        "the lone replica leads",
        Duration::from_secs(10),
        || async { is_leader(&http, &r).await == Some(true) },
    )
    .await;
    let Worker { id, token } = register(&http, &r.base, "slowpoke").await;

    // hold the worker's row, so its heartbeat stays in flight inside the server
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("select 1 from workers where id = $1 for update")
        .bind(&id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let in_flight = {
        let (http, base) = (http.clone(), r.base.clone());
        tokio::spawn(async move {
            http.post(format!("{base}/v1/workers/heartbeat"))
                .bearer_auth(token)
                .json(&json!({"status": "working"}))
                .send()
                .await
        })
    };
    // the heartbeat reaches the database and waits there
    until_a_request_waits_on_a_lock(&pool).await;

    assert!(Command::new("kill")
        .args(["-TERM", &r.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let addr = r.base.trim_start_matches("http://").to_string();
    eventually(
        "no new connections after SIGTERM",
        Duration::from_secs(5),
        || async { TcpStream::connect(&addr).is_err() },
    )
    .await;
    blocker.commit().await.unwrap();
    let resp = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let status = r.wait().await;
    assert!(status.success(), "exit status {status:?}");
    let log = r.log();
    assert!(log.contains("released scheduler leadership"), "{log}");
    assert!(log.contains("in-flight requests finished"), "{log}");
    let leader: Option<String> = sqlx::query_scalar("select leader from scheduler_state")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(leader, None, "the leaving leader cleared its name");
}

#[sqlx::test]
async fn metrics_can_live_on_their_own_port(_o: PgPoolOptions, conn: PgConnectOptions) {
    let url = database_url(&conn);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = start_replica(&url, "metered", &[("OWP_METRICS_PORT", &port.to_string())]);
    wait_ready(&http, &r).await;
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE owp_scheduler_is_leader gauge"),
        "{text}"
    );
    // and not on the API port: the public listener never exposes it
    let public = http
        .get(format!("{}/metrics", r.base))
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), reqwest::StatusCode::NOT_FOUND);
    // only /metrics there: the API stays on the main port
    let api = http
        .get(format!("http://127.0.0.1:{port}/v1/admin/state"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), reqwest::StatusCode::NOT_FOUND);
}
