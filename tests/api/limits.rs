//! Abuse resistance over the real server: per-token and per-address rate limits, in-flight
//! slots, X-Forwarded-For only from trusted proxies, the header and request timeouts, the
//! connection cap, the stream cap, and streams ending at shutdown.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use owp_pool::config::{parse_cidr, Settings};

use crate::support::replicas::{register as register_on, start_replica, wait_ready};
use crate::support::*;

fn limited(f: impl FnOnce(&mut owp_pool::config::HttpLimits)) -> Settings {
    let mut s = test_settings();
    f(&mut s.limits);
    s
}

/// Asserts a 429 in PROTOCOL.md's format with a Retry-After of at least a second.
async fn expect_rate_limited(resp: reqwest::Response) {
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "Retry-After {retry}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
}

#[sqlx::test]
async fn a_burst_from_one_token_gets_429_while_another_worker_is_unaffected(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        limited(|l| {
            l.worker_rate = 1;
            l.worker_burst = 5;
        }),
    )
    .await;
    let (greedy, calm) = (
        app.register("greedy", &[], 5, 2).await,
        app.register("calm", &[], 5, 2).await,
    );
    let burst = (0..12).map(|_| {
        app.http
            .post(format!("{}/v1/workers/heartbeat", app.base))
            .bearer_auth(&greedy.token)
            .send()
    });
    let answers = futures::future::join_all(burst).await;
    let mut refused = Vec::new();
    for a in answers {
        let a = a.unwrap();
        match a.status() {
            StatusCode::OK => {}
            _ => refused.push(a),
        }
    }
    assert!(refused.len() >= 6, "only {} of 12 refused", refused.len());
    for r in refused {
        expect_rate_limited(r).await;
    }
    app.as_worker(&calm, Method::POST, "/v1/workers/heartbeat", None)
        .await
        .expect(StatusCode::OK);
    // the refusal is counted, by which limit it was
    let text = app.ctx.metrics.render();
    assert!(
        text.contains("owp_rate_limited_total{limit=\"worker\"}"),
        "{text}"
    );
}

#[sqlx::test]
async fn an_address_over_its_rate_gets_429_and_failed_tokens_stop_costing_lookups(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        limited(|l| {
            l.ip_rate = 1;
            l.ip_burst = 5;
        }),
    )
    .await;
    // a worker registered before the flood keeps working: authenticated traffic is per token
    let w = app.register("w", &[], 5, 2).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = app
            .http
            .get(format!("{}/openapi.json", app.base))
            .send()
            .await
            .unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            expect_rate_limited(r).await;
        }
    }
    assert!(
        statuses[..4].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    app.as_worker(&w, Method::POST, "/v1/workers/heartbeat", None)
        .await
        .expect(StatusCode::OK);

    // wrong tokens from a fresh address (a trusted-proxy-less app sees only 127.0.0.1, so a
    // second app): after the burst, refused before any lookup
    let app2 = spawn_app_with(
        app.pool.clone(),
        limited(|l| {
            l.ip_rate = 1;
            l.ip_burst = 3;
        }),
    )
    .await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = app2
            .call(
                Method::GET,
                "/v1/work",
                &[("authorization", &format!("Bearer wrong-{i}"))],
                None,
            )
            .await;
        statuses.push(r.status);
    }
    assert_eq!(
        &statuses[..3],
        &[StatusCode::UNAUTHORIZED; 3],
        "{statuses:?}"
    );
    assert!(
        statuses[4..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // a wrong admin token counts the same way
    let r = app2
        .call(
            Method::GET,
            "/v1/admin/state",
            &[("x-admin-token", "nope")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test]
async fn forwarded_for_separates_clients_only_behind_a_trusted_proxy(pool: PgPool) {
    let trusting = spawn_app_with(
        pool.clone(),
        limited(|l| {
            l.ip_rate = 1;
            l.ip_burst = 2;
            l.trusted_proxies = vec![parse_cidr("127.0.0.1").unwrap()];
        }),
    )
    .await;
    let get = |app: &TestApp, client: &str| {
        app.http
            .get(format!("{}/openapi.json", app.base))
            .header("x-forwarded-for", format!("{client}, 127.0.0.1"))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            get(&trusting, "198.51.100.1").await.unwrap().status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        get(&trusting, "198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        get(&trusting, "198.51.100.2").await.unwrap().status(),
        StatusCode::OK,
        "another client behind the proxy"
    );

    let untrusting = spawn_app_with(
        pool,
        limited(|l| {
            l.ip_rate = 1;
            l.ip_burst = 2;
        }),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            get(&untrusting, "198.51.100.1").await.unwrap().status(),
            StatusCode::OK
        );
    }
    // a forged header does not buy a new bucket
    assert_eq!(
        get(&untrusting, "198.51.100.9").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[sqlx::test]
async fn a_worker_has_a_few_requests_in_flight_and_the_rest_get_429(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), limited(|l| l.worker_max_in_flight = 2)).await;
    let w = app.register("w", &[], 5, 2).await;
    let other = app.register("other", &[], 5, 2).await;
    // hold the worker's row: its polls wait in the database, each holding a slot
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("select 1 from workers where id = $1 for update")
        .bind(&w.id)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let polls: Vec<_> = (0..6)
        .map(|_| {
            let (http, base, token) = (app.http.clone(), app.base.clone(), w.token.clone());
            tokio::spawn(async move {
                http.get(format!("{base}/v1/work"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    until_a_request_waits_on_a_lock(&pool).await;
    // only the slots' requests reach the database: the others wait a second, then 429
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        waiting <= 2,
        "{waiting} requests hold a connection while waiting"
    );
    app.poll(&other).await; // another worker is unaffected
    blocker.commit().await.unwrap();
    let mut ok = 0;
    for p in polls {
        let resp = p.await.unwrap();
        if resp.status() == StatusCode::OK {
            ok += 1;
        } else {
            expect_rate_limited(resp).await;
        }
    }
    assert_eq!(ok, 2, "the two in flight are answered");
}

#[sqlx::test]
async fn a_client_that_sends_half_a_header_is_disconnected(pool: PgPool) {
    let app = spawn_app_with(
        pool,
        limited(|l| l.header_timeout = Duration::from_millis(500)),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    for partial in [&b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "[..], b""] {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(partial).await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        // the server closes the connection (an empty read, maybe after a 408 it writes)
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "still connected after 5 s");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400),
            "closed after {waited:?}"
        );
    }
    // a client that sends its header in time is served
    app.call(Method::GET, "/healthz", &[], None)
        .await
        .expect(StatusCode::OK);
}

#[sqlx::test]
async fn a_request_past_the_request_timeout_gets_503_and_changes_nothing(pool: PgPool) {
    let app = spawn_app_with(
        pool.clone(),
        limited(|l| l.request_timeout = Duration::from_secs(1)),
    )
    .await;
    app.create_repo("acme/r", 3, true).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    app.poll(&w).await;
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("select 1 from tasks where id = $1 for update")
        .bind(&t)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let started = Instant::now();
    let body = app
        .report(&w, &t, json!({"status": "completed"}))
        .await
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("OWP_REQUEST_TIMEOUT"));
    blocker.commit().await.unwrap();
    // the cut-off transaction rolled back: the report can be made again
    assert_eq!(app.task_row(&t).await.0, "leased");
    app.report(&w, &t, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
}

#[sqlx::test]
async fn connections_past_the_cap_wait_until_one_closes(pool: PgPool) {
    let app = spawn_app_with(pool, limited(|l| l.max_connections = 2)).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let first = TcpStream::connect(&addr).await.unwrap();
    let _second = TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = || {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap()
    };
    let blocked = tokio::time::timeout(
        Duration::from_millis(700),
        fresh().get(format!("{}/healthz", app.base)).send(),
    )
    .await;
    assert!(
        blocked.is_err(),
        "a third connection was served past the cap"
    );
    drop(first);
    let resp = tokio::time::timeout(
        Duration::from_secs(5),
        fresh().get(format!("{}/healthz", app.base)).send(),
    )
    .await
    .expect("served once a slot frees up")
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[sqlx::test]
async fn streams_over_the_cap_are_refused_with_503(pool: PgPool) {
    let app = spawn_app_with(pool, limited(|l| l.sse_max_streams = 2)).await;
    let open = || {
        app.http
            .get(format!("{}/v1/admin/state/stream", app.base))
            .header("x-admin-token", ADMIN)
            .send()
    };
    let a = open().await.unwrap();
    let b = open().await.unwrap();
    assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
    let c = open().await.unwrap();
    assert_eq!(c.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(c.headers().contains_key("retry-after"));
    let body: serde_json::Value = c.json().await.unwrap();
    assert_eq!(body["code"], "unavailable");
    drop(a);
    eventually(
        "a closed stream frees its slot",
        Duration::from_secs(5),
        || async { open().await.unwrap().status() == StatusCode::OK },
    )
    .await;
}

#[sqlx::test]
async fn fifty_concurrent_scrapes_leave_polls_unaffected(pool: PgPool) {
    // the DB pool is small on purpose: scrapes that read the database would starve polls
    let settings = limited(|l| l.ip_burst = 10_000);
    let small = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let app = spawn_app_with(small, settings).await;
    app.create_repo("acme/r", 100, false).await;
    app.create_tasks(
        (0..50)
            .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
            .collect(),
    )
    .await;
    let workers: Vec<Worker> =
        futures::future::join_all((0..10).map(|i| app.register_owned(format!("w{i}")))).await;
    let scrapes = futures::future::join_all((0..50).map(|_| async {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(app.call(Method::GET, "/metrics", &[], None).await.status);
        }
        statuses
    }));
    let polls = futures::future::join_all(workers.iter().map(|w| async {
        let mut statuses = Vec::new();
        for _ in 0..5 {
            statuses.push(app.as_worker(w, Method::GET, "/v1/work", None).await.status);
        }
        statuses
    }));
    let (scrapes, polls) = tokio::join!(scrapes, polls);
    assert!(
        scrapes.iter().flatten().all(|s| *s == StatusCode::OK),
        "{scrapes:?}"
    );
    assert!(
        polls.iter().flatten().all(|s| *s == StatusCode::OK),
        "{polls:?}"
    );
}

#[sqlx::test]
async fn sigterm_closes_every_stream_within_a_second(
    opts: sqlx::postgres::PgPoolOptions,
    conn: sqlx::postgres::PgConnectOptions,
) {
    let url = crate::support::replicas::database_url(&conn);
    drop(opts);
    let http = reqwest::Client::new();
    let mut r = start_replica(&url, "streaming", &[("OWP_SHUTDOWN_TIMEOUT", "20s")]);
    wait_ready(&http, &r).await;
    let _w = register_on(&http, &r.base, "w").await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        let mut resp = http
            .get(format!("{}/v1/admin/state/stream", r.base))
            .header("x-admin-token", ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // the first event arrives at once
        let first = tokio::time::timeout(Duration::from_secs(5), resp.chunk()).await;
        assert!(first.unwrap().unwrap().is_some());
        streams.push(resp);
    }
    let sent = Instant::now();
    crate::support::replicas::signal(&r.child, "-TERM");
    for mut s in streams {
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(Some(_)) = s.chunk().await {}
        })
        .await;
        assert!(ended.is_ok(), "a stream outlived SIGTERM by 2 s");
    }
    let took = sent.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "streams ended {took:?} after SIGTERM"
    );
    assert!(r.wait().await.success());
}

#[sqlx::test]
async fn an_idle_kept_alive_connection_outlives_the_header_timeout_until_the_idle_timeout(
    pool: PgPool,
) {
    let app = spawn_app_with(
        pool,
        limited(|l| {
            l.header_timeout = Duration::from_millis(300);
            l.idle_timeout = Duration::from_millis(1500);
        }),
    )
    .await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut buf = [0u8; 4096];
    for round in 0..2 {
        s.write_all(request).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("answered")
            .unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(head.starts_with("HTTP/1.1 200"), "round {round}: {head}");
        // idle for longer than the header timeout: a client polling at its cadence
        // must find its kept-alive connection open
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    // idle past the idle timeout: closed by the server
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed within the idle timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "the server closed the idle connection");
    assert!(started.elapsed() < Duration::from_secs(3));
}
