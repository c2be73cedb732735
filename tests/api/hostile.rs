//! The trust layer against a hostile worker (issue 22): credit that cannot be stolen,
//! limits that cannot be dodged, storage one worker cannot fill, a bot strangers cannot
//! steer, review budgets one contributor cannot flood, and tiers that cap what a
//! stranger's own declaration can claim. Every test drives the real server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use owp_pool::config::Secret;
use owp_pool::github::signature;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

const SECRET: &str = "hook-secret";

fn with_webhooks() -> owp_pool::config::Settings {
    let mut s = test_settings();
    s.github.github_webhook_secret = vec![Secret::new(SECRET)];
    s
}

async fn webhook(app: &TestApp, delivery: &str, body: &Value) -> Answer {
    let raw = serde_json::to_vec(body).unwrap();
    let resp = app
        .http
        .post(format!("{}/webhooks/github", app.base))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", signature::sign(SECRET, &raw))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    Answer {
        status,
        body: resp.json().await.unwrap_or(Value::Null),
        request_id,
    }
}

fn merged(url: &str, author: &str, opened_at: DateTime<Utc>) -> Value {
    json!({"action": "closed",
           "pull_request": {"html_url": url, "merged": true, "number": 1,
                            "user": {"login": author}, "created_at": opened_at},
           "repository": {"full_name": "acme/widgets"}})
}

async fn register_as(app: &TestApp, name: &str, handle: &str) -> Worker {
    let body = app
        .call(
            Method::POST,
            "/v1/workers/register",
            &[],
            Some(json!({"name": name, "github_handle": handle, "skills": [],
                        "capacity_points": 10, "max_concurrent_tasks": 1})),
        )
        .await
        .expect(StatusCode::CREATED);
    Worker {
        id: body["worker_id"].as_str().unwrap().into(),
        token: body["token"].as_str().unwrap().into(),
    }
}

async fn lease_one(app: &TestApp, w: &Worker) -> String {
    let leases = app.poll(w).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    leases[0]["task_id"].as_str().unwrap().to_string()
}

/// The worker's reputation counters: (attempts, delivered, merged).
async fn counters(app: &TestApp, w: &Worker) -> (i32, i32, i32) {
    sqlx::query_as(
        "select coalesce(sum(attempts), 0)::int, coalesce(sum(delivered), 0)::int,
                coalesce(sum(prs_merged), 0)::int
         from worker_reputation where worker_id = $1",
    )
    .bind(&w.id)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn another_workers_pr_cannot_be_claimed_and_merge_credit_follows_the_author(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), with_webhooks()).await;
    app.create_repo("acme/widgets", 5, false).await;
    app.create_tasks(vec![
        json!({"repo": "acme/widgets", "title": "b's task", "priority": 9}),
        json!({"repo": "acme/widgets", "title": "a's task", "priority": 1}),
    ])
    .await;
    let b = register_as(&app, "b", "bob").await;
    let t1 = lease_one(&app, &b).await;
    let url = "https://github.com/acme/widgets/pull/7";
    app.report(&b, &t1, json!({"status": "pr_opened", "pr_url": url}))
        .await
        .expect(StatusCode::OK);

    let a = register_as(&app, "a", "mallory").await;
    let t2 = lease_one(&app, &a).await;
    // the same PR in any spelling is B's: 409 naming the task that holds it
    for stolen in [
        url,
        "https://GitHub.com/acme/widgets/pull/7/files",
        "https://github.com/acme/widgets/pull/7/?x=1#y",
    ] {
        let body = app
            .report(&a, &t2, json!({"status": "pr_opened", "pr_url": stolen}))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(body["details"], format!("pr_url_taken: {t1}"), "{stolen}");
    }
    // links that escape the task's repository or host are refused as the field's error
    for foreign in [
        "https://github.com/acme/widgets/pull/../../../evil/x/pull/1",
        "https://github.com.evil.example/acme/widgets/pull/8",
        "https://github.com/evil/widgets/pull/8",
        "https://github.com/acme/widgets/issues/8",
    ] {
        let body = app
            .report(&a, &t2, json!({"status": "pr_opened", "pr_url": foreign}))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            body["details"].as_str().unwrap().starts_with("pr_url:"),
            "{foreign}: {body}"
        );
    }
    // A's own PR is accepted and stored in one spelling
    app.report(
        &a,
        &t2,
        json!({"status": "pr_opened", "pr_url": "https://github.com/ACME/widgets/pull/8/commits"}),
    )
    .await
    .expect(StatusCode::OK);
    let stored: String = sqlx::query_scalar("select pr_url from tasks where id = $1")
        .bind(&t2)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, "https://github.com/ACME/widgets/pull/8");

    // GitHub says bob merged #7 after the lease: B's task is merged, with credit
    let later = Utc::now() + chrono::Duration::seconds(5);
    webhook(&app, "d-1", &merged(url, "bob", later))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.task_row(&t1).await.0, "merged");
    assert_eq!(app.task_row(&t2).await.0, "pr_opened");
    assert_eq!(counters(&app, &b).await, (1, 1, 1));

    // #8 was opened by someone else (or before the lease): merged, but no credit at all
    webhook(
        &app,
        "d-2",
        &merged("https://github.com/acme/widgets/pull/8", "bob", later),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(app.task_row(&t2).await.0, "merged");
    assert_eq!(counters(&app, &a).await, (0, 0, 0));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_pr_opened_before_the_lease_earns_no_merge_credit(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), with_webhooks()).await;
    app.create_repo("acme/widgets", 5, false).await;
    app.create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let w = register_as(&app, "w", "alice").await;
    let t = lease_one(&app, &w).await;
    let url = "https://github.com/acme/widgets/pull/3";
    app.report(&w, &t, json!({"status": "pr_opened", "pr_url": url}))
        .await
        .expect(StatusCode::OK);
    let long_ago = Utc::now() - chrono::Duration::days(3);
    webhook(&app, "d-1", &merged(url, "alice", long_ago))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.task_row(&t).await.0, "merged");
    assert_eq!(counters(&app, &w).await, (0, 0, 0));
    assert_invariants(&pool).await;
}

/// Registrations from one address in a burst, each with `header` set as given.
async fn burst_of_registrations(app: &TestApp, n: usize, header: Option<(&str, String)>) -> usize {
    let mut created = 0;
    for i in 0..n {
        let mut req = app
            .http
            .post(format!("{}/v1/workers/register", app.base))
            .json(
                &json!({"name": format!("w{i}"), "skills": [], "capacity_points": 1,
                          "max_concurrent_tasks": 1}),
            );
        if let Some((name, value)) = &header {
            req = req.header(*name, value.replace("{i}", &i.to_string()));
        }
        if req.send().await.unwrap().status() == StatusCode::CREATED {
            created += 1;
        }
    }
    created
}

#[sqlx::test]
async fn junk_credentials_do_not_lift_the_address_limit(pool: PgPool) {
    let mut s = test_settings();
    s.limits.ip_rate = 1;
    s.limits.ip_burst = 10;
    // a replica each, so each burst meets a fresh address limit
    let fresh = || spawn_app_with(pool.clone(), s.clone());
    let plain = burst_of_registrations(&fresh().await, 30, None).await;
    assert!(plain <= 12, "{plain} of 30 plain registrations passed");
    let admin =
        burst_of_registrations(&fresh().await, 30, Some(("x-admin-token", "x".into()))).await;
    assert!(
        admin <= 12,
        "{admin} of 30 passed with a junk X-Admin-Token"
    );
    let app = fresh().await;
    let bearer =
        burst_of_registrations(&app, 30, Some(("authorization", "Bearer r{i}".into()))).await;
    assert!(
        bearer <= 12,
        "{bearer} of 30 passed with a junk bearer each"
    );
    // junk bearers on a worker route create no per-token state either
    let before = app.ctx.limits.is_known(&owp_pool::auth::digest("r1"));
    assert!(!before);
}

#[sqlx::test]
async fn a_valid_worker_is_not_refused_for_its_addresss_penalty(pool: PgPool) {
    let mut s = test_settings();
    s.limits.ip_rate = 1;
    s.limits.ip_burst = 3;
    let app = spawn_app_with(pool, s).await;
    let honest = app.register("honest", &[], 5, 1).await;
    // the same address sends bad tokens until it is penalised
    for i in 0..10 {
        app.http
            .post(format!("{}/v1/workers/heartbeat", app.base))
            .bearer_auth(format!("guess-{i}"))
            .send()
            .await
            .unwrap();
    }
    let refused = app
        .http
        .post(format!("{}/v1/workers/heartbeat", app.base))
        .bearer_auth("guess-x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    app.as_worker(&honest, Method::POST, "/v1/workers/heartbeat", None)
        .await
        .expect(StatusCode::OK);
    // a junk admin token is a failed authentication of the address, not an admin request
    let junk_admin = app
        .http
        .get(format!("{}/v1/workers", app.base))
        .header("x-admin-token", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(junk_admin.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test]
async fn one_lease_records_a_bounded_number_of_small_artifacts(pool: PgPool) {
    let mut s = test_settings();
    s.max_artifacts_per_lease = 3;
    s.max_artifact_extra = 100;
    let app = spawn_app_with(pool.clone(), s).await;
    app.create_repo("acme/widgets", 5, false).await;
    app.create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 1).await;
    let t = lease_one(&app, &w).await;
    let big = "x".repeat(200);
    let body = app
        .report(
            &w,
            &t,
            json!({"status": "in_progress", "artifact": {"extra": {"log": big}}}),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(body["details"]
        .as_str()
        .unwrap()
        .contains("OWP_MAX_ARTIFACT_EXTRA"));
    for i in 0..3 {
        app.report(
            &w,
            &t,
            json!({"status": "in_progress", "artifact": {"commit_sha": format!("c{i}")}}),
        )
        .await
        .expect(StatusCode::OK);
    }
    let body = app
        .report(
            &w,
            &t,
            json!({"status": "in_progress", "artifact": {"commit_sha": "c3"}}),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(body["details"]
        .as_str()
        .unwrap()
        .contains("OWP_MAX_ARTIFACTS_PER_LEASE"));
    // progress without a new artifact still lands; nothing more was stored
    app.report(&w, &t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
    let n: i64 = sqlx::query_scalar("select count(*) from artifacts where task_id = $1")
        .bind(&t)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    // the detail pages its history
    let d = app
        .admin(Method::GET, &format!("/v1/tasks/{t}?limit=2"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(d["artifacts"].as_array().unwrap().len(), 2);
    assert_eq!(d["artifacts_total"], 3);
    assert_eq!(
        d["artifacts"][1]["commit_sha"], "c2",
        "the newest, oldest first"
    );
    app.admin(Method::GET, &format!("/v1/tasks/{t}?limit=0"), None)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
}

#[sqlx::test]
async fn a_former_holder_reads_only_its_own_part_of_a_task(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/widgets", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let first = app.register("first", &[], 5, 1).await;
    assert_eq!(lease_one(&app, &first).await, t);
    app.report(&first, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    let second = app.register("second", &[], 5, 1).await;
    assert_eq!(lease_one(&app, &second).await, t);
    app.report(
        &second,
        &t,
        json!({"status": "in_progress", "message": "secret plan", "artifact": {"commit_sha": "s3cret"}}),
    )
    .await
    .expect(StatusCode::OK);
    let seen = app
        .as_worker(&first, Method::GET, &format!("/v1/tasks/{t}"), None)
        .await
        .expect(StatusCode::OK);
    let text = seen.to_string();
    assert!(!text.contains(&second.id), "{text}");
    assert!(
        !text.contains("s3cret") && !text.contains("secret plan"),
        "{text}"
    );
    assert_eq!(seen["leases"].as_array().unwrap().len(), 1);
    assert!(seen["current_lease"].is_null());
    // an admin sees everything
    let all = app
        .admin(Method::GET, &format!("/v1/tasks/{t}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(all["leases_total"], 2);
}

#[sqlx::test]
async fn one_worker_never_holds_more_than_its_share_of_a_review_budget(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(
            json!({"repo": "acme/widgets", "max_open_prs": 12, "area_locks_enabled": false,
                    "max_open_prs_per_worker": 2}),
        ),
    )
    .await
    .expect(StatusCode::CREATED);
    let tasks: Vec<Value> = (0..40)
        .map(|i| json!({"repo": "acme/widgets", "title": format!("t{i}")}))
        .collect();
    app.create_tasks(tasks).await;
    let mut workers = Vec::new();
    for i in 0..5 {
        workers.push(app.register(&format!("w{i}"), &[], 50, 10).await);
    }
    // every worker polls many times at once, on many connections
    let polls = workers
        .iter()
        .flat_map(|w| (0..8).map(move |_| w))
        .map(|w| {
            let app = &app;
            async move { app.poll_query(w, "?max=10").await }
        });
    futures::future::join_all(polls).await;
    let per_worker: Vec<(String, i64)> = sqlx::query_as(
        "select worker_id, count(*) from tasks where status in ('leased', 'pr_opened')
         group by worker_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(per_worker.len(), 5, "{per_worker:?}");
    for (w, n) in &per_worker {
        assert_eq!(*n, 2, "{w} holds {n}");
    }
    // an opened PR still counts: the worker gets nothing more here
    let w = &workers[0];
    for l in app.poll(w).await {
        let t = l["task_id"].as_str().unwrap();
        app.report(
            w,
            t,
            json!({"status": "pr_opened", "pr_url": pr_link("acme/widgets")}),
        )
        .await
        .expect(StatusCode::OK);
    }
    assert!(app.poll(w).await.is_empty());
    let repos = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(repos["repositories"][0]["max_open_prs_per_worker"], 2);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_tier_caps_what_a_workers_own_declaration_can_claim(pool: PgPool) {
    let mut s = test_settings();
    s.tier_max_concurrent = "untrusted:2".parse_caps();
    s.tier_lease_ttl = owp_pool::config::TierCaps::parse("untrusted:60s", |v| {
        humantime::parse_duration(v).map_err(|e| e.to_string())
    })
    .unwrap();
    let app = spawn_app_with(pool.clone(), s).await;
    app.create_repo("acme/widgets", 50, false).await;
    let tasks: Vec<Value> = (0..10)
        .map(|i| json!({"repo": "acme/widgets", "title": format!("t{i}")}))
        .collect();
    app.create_tasks(tasks).await;
    let body = app
        .call(
            Method::POST,
            "/v1/workers/register",
            &[],
            Some(
                json!({"name": "hoarder", "skills": [], "capacity_points": 1000,
                        "max_concurrent_tasks": 100}),
            ),
        )
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(body["lease_ttl_seconds"], 60);
    let w = Worker {
        id: body["worker_id"].as_str().unwrap().into(),
        token: body["token"].as_str().unwrap().into(),
    };
    let leases = app.poll_query(&w, "?max=100").await;
    assert_eq!(
        leases.len(),
        2,
        "an untrusted worker holds 2 whatever it declares"
    );
    let ttl: f64 = sqlx::query_scalar(
        "select max(extract(epoch from lease_expires_at - now()))::float8 from tasks where worker_id = $1",
    )
    .bind(&w.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(ttl <= 60.0, "lease of {ttl} s");
    // a report renews within the tier's TTL too
    let t = leases[0]["task_id"].as_str().unwrap();
    let r = app
        .report(&w, t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
    let expires: DateTime<Utc> = r["lease_expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires <= Utc::now() + chrono::Duration::seconds(61));
    // promoted, the same declaration counts in full
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/trust-tier", w.id),
        Some(json!({"tier": "trusted", "reason": "proven"})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(app.poll_query(&w, "?max=100").await.len(), 10);
}

trait ParseCaps {
    fn parse_caps(self) -> owp_pool::config::TierCaps<i32>;
}

impl ParseCaps for &str {
    fn parse_caps(self) -> owp_pool::config::TierCaps<i32> {
        owp_pool::config::TierCaps::parse(self, |v| v.parse::<i32>().map_err(|e| e.to_string()))
            .unwrap()
    }
}

#[sqlx::test]
async fn an_untrusted_completion_without_a_pr_counts_for_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/widgets", 5, false).await;
    app.create_tasks(vec![
        json!({"repo": "acme/widgets", "title": "a", "priority": 2}),
        json!({"repo": "acme/widgets", "title": "b", "priority": 1}),
    ])
    .await;
    let w = app.register("w", &[], 5, 1).await;
    let a = lease_one(&app, &w).await;
    app.report(&w, &a, json!({"status": "completed"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(counters(&app, &w).await, (0, 0, 0));
    // with a PR link to show, a completion counts
    let b = lease_one(&app, &w).await;
    app.report(
        &w,
        &b,
        json!({"status": "completed", "pr_url": pr_link("acme/widgets")}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(counters(&app, &w).await, (1, 1, 0));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn releasing_again_backs_off_like_a_failure(pool: PgPool) {
    let mut s = test_settings();
    s.retry_backoff = Duration::from_secs(600);
    let app = spawn_app_with(pool.clone(), s).await;
    app.create_repo("acme/widgets", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 1).await;
    assert_eq!(lease_one(&app, &w).await, t);
    app.report(&w, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    // the first release is free: the task is claimable at once
    assert_eq!(lease_one(&app, &w).await, t);
    app.report(&w, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    assert!(app.poll(&w).await.is_empty(), "a second release waits");
    let other = app.register("other", &[], 5, 1).await;
    assert!(app.poll(&other).await.is_empty(), "for everyone");
    let retry_at: Option<DateTime<Utc>> =
        sqlx::query_scalar("select retry_at from tasks where id = $1")
            .bind(&t)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(retry_at.is_some_and(|r| r > Utc::now()));
}

#[test]
fn the_server_refuses_to_start_with_a_guessable_admin_token() {
    for token in ["a", "ops=short-token"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_owp"))
            .arg("serve")
            .env("DATABASE_URL", "postgres://owp:owp@127.0.0.1:1/none")
            .env("OWP_ADMIN_TOKEN", token)
            .env("OWP_PORT", "0")
            .output()
            .expect("the owp binary runs");
        assert!(!out.status.success(), "started with {token:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("shorter than 16 characters"), "{err}");
        assert!(
            !err.contains("short-token"),
            "the token is never echoed: {err}"
        );
    }
    // a scope gone wrong would otherwise be a pool-wide token spelled as the whole entry
    for entry in [
        "carol@=long-enough-token-0001",
        "car ol@acme/web=long-enough-token-0001",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_owp"))
            .arg("serve")
            .env("DATABASE_URL", "postgres://owp:owp@127.0.0.1:1/none")
            .env("OWP_ADMIN_TOKEN", entry)
            .env("OWP_PORT", "0")
            .output()
            .expect("the owp binary runs");
        assert!(!out.status.success(), "started with {entry:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("name@owner/repo=<token>"), "{err}");
        assert!(
            !err.contains("long-enough"),
            "the token is never echoed: {err}"
        );
    }
}

/// Signs in to the dashboard; the `Set-Cookie` line.
async fn sign_in(app: &TestApp, forwarded_proto: Option<&str>) -> String {
    let mut req = app
        .http
        .post(format!("{}/v1/dashboard/session", app.base))
        .json(&json!({"admin_token": ADMIN}));
    if let Some(p) = forwarded_proto {
        req = req.header("x-forwarded-proto", p);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    resp.headers()["set-cookie"].to_str().unwrap().to_string()
}

#[sqlx::test]
async fn the_session_cookie_is_secure_only_on_a_trusted_proxys_word(pool: PgPool) {
    // from an untrusted peer, X-Forwarded-Proto is ignored: a plain local cookie
    let app = spawn_app(pool.clone()).await;
    let plain = sign_in(&app, Some("https")).await;
    assert!(
        plain.starts_with("owp_session=") && !plain.contains("Secure"),
        "{plain}"
    );
    // behind a trusted TLS-terminating proxy: __Host- and Secure, and it signs in
    let mut s = test_settings();
    s.limits.trusted_proxies = vec![owp_pool::config::parse_cidr("127.0.0.1").unwrap()];
    let behind = spawn_app_with(pool, s).await;
    let secure = sign_in(&behind, Some("https")).await;
    assert!(secure.starts_with("__Host-owp_session="), "{secure}");
    assert!(secure.contains("; Secure") && secure.contains("Path=/") && !secure.contains("Domain"));
    let cookie = secure.split(';').next().unwrap().to_string();
    let state = behind
        .call(Method::GET, "/v1/admin/state", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(state.status, StatusCode::OK);
}

#[sqlx::test]
async fn a_state_stream_ends_when_its_session_does(pool: PgPool) {
    let app = spawn_app(pool).await;
    let cookie = sign_in(&app, None).await;
    let cookie = cookie.split(';').next().unwrap().to_string();
    let mut stream = app
        .http
        .get(format!("{}/v1/admin/state/stream", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.chunk())
        .await
        .expect("a first event")
        .unwrap();
    assert!(first.is_some());
    let out = app
        .http
        .delete(format!("{}/v1/dashboard/session", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    // the stream ends within the recheck (5 s), though its heartbeat would go on forever
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(_chunk) = stream.chunk().await.unwrap_or(None) {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
}

#[tokio::test]
async fn the_client_never_carries_an_admin_token_to_another_host() {
    use std::sync::{Arc, Mutex};
    // the other host (`localhost`, not `127.0.0.1`): records what reaches it
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    let other = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = record.clone();
        async move {
            let token = headers
                .get("x-admin-token")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            record.lock().unwrap().push(token);
            "{}"
        }
    });
    let other_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let other_port = other_listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(other_listener, other).await });
    // the pool's address answers with a redirect there
    let redirecting = axum::Router::new().fallback(move || async move {
        axum::response::Redirect::temporary(&format!(
            "http://localhost:{other_port}/v1/admin/repos"
        ))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, redirecting).await });

    let client = owp_pool::client::Client::new(
        &base,
        owp_pool::client::Credentials::Admin("secret-admin-token".into()),
    )
    .unwrap();
    assert!(client.list_repos().await.is_err());
    assert!(
        seen.lock().unwrap().iter().all(|t| t.is_empty()),
        "the admin token went to another host"
    );
}

#[sqlx::test]
async fn the_api_docs_cannot_be_framed_or_sniffed(pool: PgPool) {
    let app = spawn_app(pool).await;
    for path in ["/docs/", "/docs/swagger-initializer.js"] {
        let resp = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
    }
}

#[sqlx::test]
async fn a_fleet_meeting_a_fresh_replica_is_not_limited_by_its_shared_address(pool: PgPool) {
    // the fleet registers through one replica ...
    let first = spawn_app(pool.clone()).await;
    let mut fleet = Vec::new();
    for i in 0..30 {
        fleet.push(first.register(&format!("w{i}"), &[], 5, 1).await);
    }
    // ... and all of it reaches another, new one at once, from one (NAT) address
    let mut s = test_settings();
    s.limits.ip_rate = 1;
    s.limits.ip_burst = 5;
    let fresh = spawn_app_with(pool, s).await;
    let beats = fleet
        .iter()
        .map(|w| fresh.as_worker(w, Method::POST, "/v1/workers/heartbeat", None));
    for a in futures::future::join_all(beats).await {
        a.expect(StatusCode::OK);
    }
    // their tokens now have limits of their own there
    assert!(fresh
        .ctx
        .limits
        .is_known(&owp_pool::auth::digest(&fleet[0].token)));
}
