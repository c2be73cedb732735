//! Notifications (`/v1/admin/notifications`): channels hear the events they ask for, through
//! the outbox, once, signed; Slack and Discord get their own payloads and nobody is
//! mentioned; a failing receiver is retried, then given up and shown; channels cannot
//! point into private networks; a scoped admin manages only its own channels.

use std::collections::HashMap;
use std::time::Duration;

use hmac::{Hmac, Mac};
use owp_pool::app::AppContext;
use owp_pool::auth::{Registration, TokenSet};
use owp_pool::config::Settings;
use owp_pool::scheduler::notifications as deliverer;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::PgPool;

use crate::support::receiver::{Received, Receiver};
use crate::support::{cli, pr_link, spawn_app_with, spawn_ctx, test_settings, TestApp, ADMIN};

fn settings() -> Settings {
    let mut s = test_settings();
    s.notify.notify_allow_private = true;
    s.notify.notify_interval = Duration::from_millis(20);
    s
}

/// One delivery run, as the leader's loop makes it.
async fn deliver(app: &TestApp) -> deliverer::Ran {
    let client = deliverer::client(&app.ctx.settings.notify);
    deliverer::run(&app.ctx, &client).await.unwrap()
}

async fn channel(app: &TestApp, body: Value) -> Value {
    app.admin(Method::POST, "/v1/admin/notifications", Some(body))
        .await
        .expect(StatusCode::CREATED)
}

/// All channels' names, as the pool-wide admin lists them.
async fn channel_names(app: &TestApp, token: &str) -> Vec<String> {
    let list = app
        .call(
            Method::GET,
            "/v1/admin/notifications",
            &[("x-admin-token", token)],
            None,
        )
        .await
        .expect(StatusCode::OK);
    list["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// Checks `X-OWP-Signature` as a receiver would: HMAC-SHA256 over `<t>.<body>`.
fn signed_by(r: &Received, secret: &str) -> bool {
    let sig = r.header("x-owp-signature");
    let Some((t, v1)) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&r.raw);
    mac.verify_slice(&hex::decode(v1).unwrap_or_default())
        .is_ok()
}

/// A worker holding one task of `repo`, which it then fails for good (max_attempts 1).
async fn fail_a_task(app: &TestApp, repo: &str, name: &str) -> String {
    let task = app
        .create_task(json!({"repo": repo, "title": format!("fix {name}"), "max_attempts": 1}))
        .await;
    let w = app.register(name, &[], 10, 5).await;
    let leases = app.poll(&w).await;
    let lease = leases
        .iter()
        .find(|l| l["task_id"] == task.as_str())
        .unwrap();
    app.report(
        &w,
        &task,
        json!({"status": "failed", "lease_id": lease["lease_id"]}),
    )
    .await
    .expect(StatusCode::OK);
    task
}

#[sqlx::test]
async fn a_signed_webhook_hears_what_it_asked_for_once(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), settings()).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    app.create_repo("acme/web", 5, false).await;
    let made = channel(
        &app,
        json!({"name": "ops", "kind": "webhook", "url": format!("{base}/hook/secret-path"),
               "events": ["task_failed", "worker_revoked", "write_back_gave_up"]}),
    )
    .await;
    let secret = made["secret"].as_str().unwrap().to_string();
    assert_eq!(
        made["channel"]["url"],
        format!("{base}/…"),
        "the path is not shown"
    );
    let task = fail_a_task(&app, "acme/web", "w1").await;
    let w2 = app.register("w2", &[], 10, 1).await;
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/revoke", w2.id),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::OK);
    // GitHub write-back given up (as store::github::give_up records it)
    sqlx::query(
        "insert into github_outbox (task_id, gh_repo, issue_number, event, attempt, gave_up_at, last_error)
         values ($1, 'acme/web', 3, 'leased', 1, null, null)",
    )
    .bind(&task)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "update github_outbox set gave_up_at = now(), last_error = 'HTTP 404', attempts = 4",
    )
    .execute(&pool)
    .await
    .unwrap();

    assert_eq!(deliver(&app).await.delivered, 3);
    assert_eq!(
        deliver(&app).await,
        deliverer::Ran::default(),
        "nothing twice"
    );
    let got = rx.at("/hook/secret-path");
    let by_event: HashMap<&str, &Received> =
        got.iter().map(|r| (r.header("x-owp-event"), r)).collect();
    assert_eq!(got.len(), 3);
    for r in &got {
        assert!(
            signed_by(r, &secret),
            "signed: {}",
            r.header("x-owp-signature")
        );
        assert!(!signed_by(r, "another secret"));
        assert_eq!(r.header("x-owp-delivery"), r.body["id"].to_string());
        assert_eq!(r.header("content-type"), "application/json");
    }
    let failed = &by_event["task_failed"].body;
    assert_eq!(failed["data"]["task_id"], task.as_str());
    assert_eq!(failed["data"]["repo"], "acme/web");
    assert_eq!(failed["data"]["attempt"], 1);
    assert!(failed["summary"]
        .as_str()
        .unwrap()
        .contains("failed for good"));
    assert_eq!(
        by_event["worker_revoked"].body["data"]["worker_id"],
        w2.id.as_str()
    );
    let gave_up = &by_event["write_back_gave_up"].body["data"];
    assert_eq!(
        (gave_up["issue"].as_str(), gave_up["error"].as_str()),
        (Some("acme/web#3"), Some("HTTP 404"))
    );

    let list = app
        .admin(
            Method::GET,
            "/v1/admin/notifications/deliveries?state=delivered",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(list["deliveries"].as_array().unwrap().len(), 3);
    let channels = app
        .admin(Method::GET, "/v1/admin/notifications", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(channels["channels"][0]["pending"], 0);
    assert!(channels["channels"][0]["last_delivered_at"].is_string());
    assert!(
        channels.to_string().find(&secret).is_none(),
        "the secret is shown once"
    );
}

#[sqlx::test]
async fn slack_and_discord_get_their_payloads_and_a_name_mentions_nobody(pool: PgPool) {
    let app = spawn_app_with(pool, settings()).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    for kind in ["slack", "discord"] {
        channel(
            &app,
            json!({"name": kind, "kind": kind, "url": format!("{base}/{kind}"), "events": ["worker_revoked"]}),
        )
        .await;
    }
    let w = app
        .register("<!channel> @everyone **bold**", &[], 10, 1)
        .await;
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/revoke", w.id),
        Some(json!({})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(deliver(&app).await.delivered, 2);
    let slack = &rx.at("/slack")[0].body;
    let text = slack["text"].as_str().unwrap();
    assert!(
        text.contains(w.id.as_str()) && text.contains("&lt;!channel&gt;"),
        "{text}"
    );
    assert!(!text.contains("<!channel>"), "{text}");
    let discord = &rx.at("/discord")[0].body;
    assert_eq!(discord["allowed_mentions"], json!({"parse": []}));
    let content = discord["content"].as_str().unwrap();
    assert!(
        content.contains("\\@everyone") && content.contains("\\*\\*bold\\*\\*"),
        "{content}"
    );
}

#[sqlx::test]
async fn a_failing_receiver_is_retried_then_given_up_shown_and_tried_again(pool: PgPool) {
    let mut s = settings();
    s.notify.notify_max_attempts = 3;
    s.notify.notify_interval = Duration::from_millis(10);
    let app = spawn_app_with(pool, s).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    let id = channel(
        &app,
        json!({"name": "flaky", "kind": "webhook", "url": format!("{base}/h"), "events": ["task_failed"]}),
    )
    .await["channel"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    rx.answer_always(Some(503));
    let queued = app
        .admin(
            Method::POST,
            &format!("/v1/admin/notifications/{id}/test"),
            None,
        )
        .await
        .expect(StatusCode::ACCEPTED);
    let mut ran = Vec::new();
    for _ in 0..20 {
        ran.push(deliver(&app).await);
        if ran.iter().any(|r| r.gave_up == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(ran.iter().map(|r| r.retried).sum::<usize>(), 2, "{ran:?}");
    assert_eq!(rx.at("/h").len(), 3, "three tries, no more");
    let failed = app
        .admin(
            Method::GET,
            "/v1/admin/notifications/deliveries?state=failed",
            None,
        )
        .await
        .expect(StatusCode::OK);
    let d = &failed["deliveries"][0];
    assert_eq!(d["id"], queued["delivery_id"]);
    assert_eq!(
        (d["attempts"].as_i64(), d["last_error"].as_str()),
        (Some(3), Some("HTTP 503"))
    );
    assert_eq!(d["event"], "test");
    let channels = app
        .admin(Method::GET, "/v1/admin/notifications", None)
        .await;
    assert_eq!(channels.body["channels"][0]["failed"], 1);

    // fixed: an admin tries it again
    rx.answer_always(None);
    let path = format!("/v1/admin/notifications/deliveries/{}/retry", d["id"]);
    app.admin(Method::POST, &path, None)
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(deliver(&app).await.delivered, 1);
    app.admin(Method::POST, &path, None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // an answer no retry changes gives up at once
    rx.answer_next(&[410]);
    app.admin(
        Method::POST,
        &format!("/v1/admin/notifications/{id}/test"),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED);
    assert_eq!(deliver(&app).await.gave_up, 1);
}

#[sqlx::test]
async fn stale_prs_and_full_budgets_are_announced_once_each(pool: PgPool) {
    let mut s = settings();
    s.pr_stale_after = Duration::from_millis(500);
    s.notify.notify_budget_full_after = Duration::from_millis(500);
    let app = spawn_app_with(pool, s).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    app.create_repo("acme/web", 1, false).await;
    app.create_repo("acme/docs", 1, false).await;
    channel(
        &app,
        json!({"name": "web", "kind": "webhook", "url": format!("{base}/web"),
               "events": ["pr_stale", "budget_full"], "repo": "acme/web"}),
    )
    .await;
    let w = app.register("w", &[], 10, 5).await;
    for repo in ["acme/web", "acme/docs"] {
        let task = app.create_task(json!({"repo": repo, "title": "t"})).await;
        let leases = app.poll(&w).await;
        let lease = leases
            .iter()
            .find(|l| l["task_id"] == task.as_str())
            .unwrap();
        app.report(
            &w,
            &task,
            json!({"status": "pr_opened", "lease_id": lease["lease_id"], "pr_url": pr_link(repo)}),
        )
        .await
        .expect(StatusCode::OK);
    }
    assert_eq!(
        deliver(&app).await.announced,
        0,
        "not stale, not full for long yet"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        deliver(&app).await.announced,
        2,
        "the PR and the budget of acme/web"
    );
    for _ in 0..3 {
        assert_eq!(deliver(&app).await.announced, 0, "once each");
    }
    let got = rx.at("/web");
    let events: Vec<&str> = got.iter().map(|r| r.header("x-owp-event")).collect();
    assert_eq!(got.len(), 2, "{events:?}");
    assert!(events.contains(&"pr_stale") && events.contains(&"budget_full"));
    for r in &got {
        assert_eq!(
            r.body["data"]["repo"], "acme/web",
            "acme/docs has no channel"
        );
    }
}

#[sqlx::test]
async fn two_deliverers_at_once_send_each_notification_once(pool: PgPool) {
    let app = spawn_app_with(pool, settings()).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    app.create_repo("acme/web", 100, false).await;
    channel(
        &app,
        json!({"name": "all", "kind": "webhook", "url": format!("{base}/all"), "events": ["task_failed"]}),
    )
    .await;
    // 24 tasks failed for good by 24 workers at once
    app.create_tasks(
        (0..24)
            .map(|i| json!({"repo": "acme/web", "title": format!("t{i}"), "max_attempts": 1}))
            .collect(),
    )
    .await;
    let mut workers = Vec::new();
    for i in 0..24 {
        workers.push(app.register(&format!("w{i}"), &[], 10, 1).await);
    }
    let tasks: Vec<String> = futures::future::join_all(workers.iter().map(|w| {
        let app = &app;
        async move {
            for _ in 0..50 {
                if let Some(l) = app.poll(w).await.first() {
                    let task = l["task_id"].as_str().unwrap().to_string();
                    let body = json!({"status": "failed", "lease_id": l["lease_id"]});
                    app.report(w, &task, body).await.expect(StatusCode::OK);
                    return task;
                }
            }
            panic!("{} found no task", w.id)
        }
    }))
    .await;
    // four replicas that each believe they lead, delivering at once until nothing is left
    let runs = (0..4).map(|_| async {
        let mut delivered = 0;
        for _ in 0..10 {
            delivered += deliver(&app).await.delivered;
        }
        delivered
    });
    let delivered: usize = futures::future::join_all(runs).await.into_iter().sum();
    assert_eq!(delivered, 24);
    let got = rx.at("/all");
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.header("x-owp-delivery").to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!((got.len(), ids.len()), (24, 24), "each delivery once");
    let mut announced: Vec<&str> = got
        .iter()
        .map(|r| r.body["data"]["task_id"].as_str().unwrap())
        .collect();
    announced.sort();
    let mut expected: Vec<&str> = tasks.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(announced, expected, "every task's failure, once");
}

#[sqlx::test]
async fn channels_cannot_reach_into_private_networks(pool: PgPool) {
    let strict = spawn_app_with(pool.clone(), test_settings()).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    for url in [
        format!("{base}/h"),
        "https://127.0.0.1/h".to_string(),
        "https://localhost/h".to_string(),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://[::1]/h".to_string(),
        "https://10.0.0.7/h".to_string(),
        "https://user:pw@example.com/h".to_string(),
        "ftp://example.com/h".to_string(),
    ] {
        let a = strict
            .admin(
                Method::POST,
                "/v1/admin/notifications",
                Some(
                    json!({"name": "x", "kind": "webhook", "url": url, "events": ["task_failed"]}),
                ),
            )
            .await;
        let body = a.expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            body["details"].as_str().unwrap().starts_with("url:"),
            "{url}: {body}"
        );
    }
    // a channel made while private networks were allowed is refused at delivery
    let lax = spawn_app_with(pool.clone(), settings()).await;
    channel(
        &lax,
        json!({"name": "inside", "kind": "webhook", "url": format!("{base}/h"), "events": ["task_failed"]}),
    )
    .await;
    strict.create_repo("acme/web", 5, false).await;
    fail_a_task(&strict, "acme/web", "w").await;
    assert_eq!(deliver(&strict).await.gave_up, 1);
    let failed = strict
        .admin(
            Method::GET,
            "/v1/admin/notifications/deliveries?state=failed",
            None,
        )
        .await
        .expect(StatusCode::OK);
    let error = failed["deliveries"][0]["last_error"].as_str().unwrap();
    assert!(error.contains("private network"), "{error}");
    // and a name that resolves inside is never connected to, whatever the URL check says
    let client = deliverer::client(&strict.ctx.settings.notify);
    let port = base.rsplit(':').next().unwrap();
    let e = client
        .post(format!("http://localhost:{port}/h"))
        .send()
        .await
        .expect_err("no connection to a private address");
    assert!(
        format!("{e:?}").contains("NotPublic(\"localhost\")"),
        "{e:?}"
    );
    assert!(rx.got().is_empty(), "the receiver heard nothing");
}

#[sqlx::test]
async fn bad_channels_are_refused_naming_the_field(pool: PgPool) {
    let app = spawn_app_with(pool, settings()).await;
    app.create_repo("acme/web", 5, false).await;
    let ok = json!({"name": "a", "kind": "webhook", "url": "https://example.com/h", "events": ["task_failed"]});
    let with = |k: &str, v: Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("kind", json!("email")), "kind:"),
        (with("events", json!(["nope"])), "events:"),
        (with("events", json!([])), "events:"),
        (with("name", json!(" ")), "name:"),
        (
            with("events", json!(["worker_revoked"])).tap_repo("acme/web"),
            "events:",
        ),
    ] {
        let a = app
            .admin(Method::POST, "/v1/admin/notifications", Some(body))
            .await;
        let e = a.expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with(field), "{e}");
    }
    channel(&app, ok.clone()).await;
    let dup = app
        .admin(Method::POST, "/v1/admin/notifications", Some(ok.clone()))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(dup["details"], "name_taken");
    app.admin(
        Method::POST,
        "/v1/admin/notifications",
        Some(with("name", json!("b")).tap_repo("nobody/here")),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.admin(Method::DELETE, "/v1/admin/notifications/nc_nope", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.admin(
        Method::POST,
        "/v1/admin/notifications/deliveries/x/retry",
        None,
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(channel_names(&app, ADMIN).await, ["a"], "nothing else made");
}

trait TapRepo {
    fn tap_repo(self, repo: &str) -> Value;
}

impl TapRepo for Value {
    fn tap_repo(mut self, repo: &str) -> Value {
        self["repo"] = json!(repo);
        self
    }
}

const CAROL: &str = "carol-scoped-token-0001";

#[sqlx::test]
async fn a_scoped_admin_manages_only_its_own_channels(pool: PgPool) {
    let ctx = AppContext::new(
        pool,
        settings(),
        TokenSet::named([format!("carol@acme/web={CAROL}"), ADMIN.to_string()]),
        Registration::Open,
    );
    let app = spawn_ctx(ctx).await;
    app.create_repo("acme/web", 5, false).await;
    app.create_repo("acme/docs", 5, false).await;
    let carol = |method: Method, path: &str, body: Option<Value>| {
        let app = &app;
        let path = path.to_string();
        async move {
            app.call(method, &path, &[("x-admin-token", CAROL)], body)
                .await
        }
    };
    let hook = |repo: Option<&str>, name: &str| json!({"name": name, "kind": "webhook", "url": "https://example.com/h", "events": ["task_failed"], "repo": repo});
    carol(
        Method::POST,
        "/v1/admin/notifications",
        Some(hook(None, "pool")),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    carol(
        Method::POST,
        "/v1/admin/notifications",
        Some(hook(Some("acme/docs"), "docs")),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let mine = carol(
        Method::POST,
        "/v1/admin/notifications",
        Some(hook(Some("acme/web"), "web")),
    )
    .await
    .expect(StatusCode::CREATED);
    let pool_wide = channel(&app, hook(None, "root")).await;
    let docs = channel(&app, hook(Some("acme/docs"), "docs")).await;
    assert_eq!(channel_names(&app, CAROL).await, ["web"]);
    for other in [&pool_wide, &docs] {
        let id = other["channel"]["id"].as_str().unwrap();
        carol(
            Method::DELETE,
            &format!("/v1/admin/notifications/{id}"),
            None,
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
        carol(
            Method::POST,
            &format!("/v1/admin/notifications/{id}/test"),
            None,
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert_eq!(
        channel_names(&app, ADMIN).await,
        ["web", "root", "docs"],
        "nothing removed"
    );
    let id = mine["channel"]["id"].as_str().unwrap();
    carol(
        Method::DELETE,
        &format!("/v1/admin/notifications/{id}"),
        None,
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    let audit = app
        .admin(
            Method::GET,
            "/v1/audit/events?type=notification_channel_deleted",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(audit["events"][0]["actor"], "admin:carol");
}

/// `owp admin --url <app> --admin-token <ADMIN> [--json] <args>`: its stdout.
async fn admin_cli(app: &TestApp, dir: &cli::Scratch, json: bool, args: &[&str]) -> String {
    let mut all = vec!["admin", "--url", app.base.as_str(), "--admin-token", ADMIN];
    if json {
        all.push("--json");
    }
    all.extend_from_slice(args);
    cli::ok(&cli::run(&dir.0, &all).await)
}

#[sqlx::test]
async fn the_admin_cli_makes_lists_tests_and_removes_channels(pool: PgPool) {
    let app = spawn_app_with(pool, settings()).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    let dir = cli::Scratch::new();
    let url = format!("{base}/cli");
    let add = [
        "notify",
        "add",
        "--name",
        "cli",
        "--webhook-url",
        &url,
        "--event",
        "task_failed,budget_full",
    ];
    let made: Value = serde_json::from_str(&admin_cli(&app, &dir, true, &add).await).unwrap();
    let id = made["channel"]["id"].as_str().unwrap().to_string();
    assert!(made["secret"].as_str().unwrap().len() >= 32);
    let listed = admin_cli(&app, &dir, false, &["notify", "list"]).await;
    assert!(
        listed.contains(&id) && listed.contains("budget_full,task_failed"),
        "{listed}"
    );
    let queued: Value =
        serde_json::from_str(&admin_cli(&app, &dir, true, &["notify", "test", &id]).await).unwrap();
    assert!(queued["delivery_id"].is_i64());
    assert_eq!(deliver(&app).await.delivered, 1);
    assert_eq!(rx.at("/cli")[0].header("x-owp-event"), "test");
    let delivered = admin_cli(
        &app,
        &dir,
        false,
        &["notify", "deliveries", "--state", "delivered"],
    )
    .await;
    assert!(delivered.contains("A test notification"), "{delivered}");
    admin_cli(&app, &dir, false, &["notify", "remove", &id]).await;
    let listed: Value =
        serde_json::from_str(&admin_cli(&app, &dir, true, &["notify", "list"]).await).unwrap();
    assert_eq!(listed["channels"], json!([]));
}

#[sqlx::test]
async fn only_the_leader_delivers_and_its_loop_ends_with_the_replica(pool: PgPool) {
    let app = spawn_app_with(pool, settings()).await;
    let rx = Receiver::default();
    let base = rx.start().await;
    let id = channel(
        &app,
        json!({"name": "ops", "kind": "webhook", "url": format!("{base}/h"), "events": ["task_failed"]}),
    )
    .await["channel"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let service = app
        .ctx
        .tasks
        .spawn("notifications", deliverer::run_service(app.ctx.clone()));
    app.admin(
        Method::POST,
        &format!("/v1/admin/notifications/{id}/test"),
        None,
    )
    .await
    .expect(StatusCode::ACCEPTED);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        rx.got().is_empty(),
        "a replica that does not lead sends nothing"
    );
    app.ctx
        .is_leader
        .store(true, std::sync::atomic::Ordering::Relaxed);
    crate::support::eventually::eventually(
        "the leader delivered it",
        Duration::from_secs(10),
        || async { rx.got().len() == 1 },
    )
    .await;
    app.ctx.stop();
    tokio::time::timeout(Duration::from_secs(5), service)
        .await
        .expect("the loop ends with the replica")
        .unwrap();
}
