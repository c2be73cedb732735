//! GitHub closes the loop: signed webhooks against the real server, write-back through the
//! outbox to a local fake GitHub, and sync.

use std::time::Duration;

use owp_pool::config::Secret;
use owp_pool::github::{signature, GitHub};
use owp_pool::scheduler::github_outbox;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::fake_github::FakeGithub;
use crate::support::*;

pub(crate) const SECRET: &str = "new-secret";

pub(crate) async fn app_with_github(pool: PgPool, api: &str) -> TestApp {
    let mut settings = test_settings();
    settings.github.github_webhook_secret = vec![Secret::new("old-secret"), Secret::new(SECRET)];
    settings.github.github_token = Some(Secret::new("gh-token"));
    settings.github.github_api_url = api.to_string();
    settings.github.github_outbox_interval = Duration::from_millis(10);
    settings.github.github_outbox_max_attempts = 3;
    spawn_app_with(pool, settings).await
}

/// POSTs a webhook delivery signed with `secret` (None: unsigned).
pub(crate) async fn deliver(
    app: &TestApp,
    event: &str,
    delivery: &str,
    body: &Value,
    secret: Option<&str>,
) -> Answer {
    let raw = serde_json::to_vec(body).unwrap();
    send_raw(
        app,
        event,
        delivery,
        raw.clone(),
        secret.map(|s| signature::sign(s, &raw)),
    )
    .await
}

async fn send_raw(
    app: &TestApp,
    event: &str,
    delivery: &str,
    raw: Vec<u8>,
    sig: Option<String>,
) -> Answer {
    let mut req = app
        .http
        .post(format!("{}/webhooks/github", app.base))
        .header("x-github-event", event)
        .header("x-github-delivery", delivery)
        .header("content-type", "application/json")
        .body(raw);
    if let Some(s) = sig {
        req = req.header("x-hub-signature-256", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let request_id = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        request_id,
    }
}

fn pr_closed(url: &str, merged: bool) -> Value {
    json!({"action": "closed", "pull_request": {"html_url": url, "merged": merged, "number": 5},
           "repository": {"full_name": "acme/widgets"}})
}

pub(crate) fn issue_event(
    action: &str,
    number: u64,
    labels: &[&str],
    label: Option<&str>,
) -> Value {
    let labels: Vec<Value> = labels.iter().map(|l| json!({"name": l})).collect();
    let mut v = json!({"action": action,
        "issue": {"number": number, "title": format!("Issue {number}"), "body": "Fix it.",
                  "html_url": format!("https://github.com/acme/widgets/issues/{number}"), "labels": labels},
        "repository": {"full_name": "acme/widgets"}});
    if let Some(l) = label {
        v["label"] = json!({"name": l});
    }
    v
}

/// A repo that writes back, and a task imported from its issue `number` by a webhook.
async fn write_back_repo_with_issue(app: &TestApp, number: u64) {
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/widgets", "max_open_prs": 3, "github_write_back": true})),
    )
    .await
    .expect(StatusCode::CREATED);
    let delivery = format!("l-{number}");
    deliver(
        app,
        "issues",
        &delivery,
        &issue_event("labeled", number, &["owp"], Some("owp")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
}

/// A worker holding a task that opened a PR at `url`.
async fn pr_opened(app: &TestApp, w: &Worker, url: &str) -> String {
    let leases = app.poll(w).await;
    let task = leases[0]["task_id"].as_str().unwrap().to_string();
    app.report(w, &task, json!({"status": "pr_opened", "pr_url": url}))
        .await
        .expect(StatusCode::OK);
    task
}

#[sqlx::test]
async fn signatures_are_checked_before_anything_happens(pool: PgPool) {
    let app = app_with_github(pool.clone(), "http://127.0.0.1:9").await;
    app.create_repo("acme/widgets", 1, false).await;
    let ping = json!({"zen": "Keep it logically awesome."});
    let ok = deliver(&app, "ping", "d-1", &ping, Some(SECRET))
        .await
        .expect(StatusCode::OK);
    assert_eq!(ok["outcome"], "pong");
    // the old secret still signs during a rotation
    deliver(&app, "ping", "d-2", &ping, Some("old-secret"))
        .await
        .expect(StatusCode::OK);
    // wrong secret, no signature, and a body changed by one byte after signing: 401
    deliver(&app, "ping", "d-3", &ping, Some("guess"))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    deliver(&app, "ping", "d-4", &ping, None)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    let w = app.register("w", &[], 5, 2).await;
    app.create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let task = pr_opened(&app, &w, "https://github.com/acme/widgets/pull/5").await;
    let body =
        serde_json::to_vec(&pr_closed("https://github.com/acme/widgets/pull/5", true)).unwrap();
    let sig = signature::sign(SECRET, &body);
    let mut altered = body.clone();
    let at = altered.iter().position(|b| *b == b'5').unwrap();
    altered[at] = b'6';
    send_raw(&app, "pull_request", "d-5", altered, Some(sig.clone()))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    assert_eq!(
        app.task_row(&task).await.0,
        "pr_opened",
        "a refused delivery changes nothing"
    );
    // the same body as signed goes through
    send_raw(&app, "pull_request", "d-6", body, Some(sig))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.task_row(&task).await.0, "merged");

    // without a secret configured the route is not there
    let plain = spawn_app(pool).await;
    deliver(&plain, "ping", "d-7", &ping, Some(SECRET))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[sqlx::test]
async fn a_merged_pr_frees_the_review_slot_and_the_next_task_is_leased(pool: PgPool) {
    let app = app_with_github(pool, "http://127.0.0.1:9").await;
    app.create_repo("acme/widgets", 1, false).await;
    let w = app.register("w", &[], 5, 2).await;
    app.create_task(json!({"repo": "acme/widgets", "title": "first", "priority": 20}))
        .await;
    let second = app
        .create_task(json!({"repo": "acme/widgets", "title": "second"}))
        .await;
    let url = "https://github.com/acme/widgets/pull/5";
    let first = pr_opened(&app, &w, url).await;
    assert!(
        app.poll(&w).await.is_empty(),
        "the budget of one is held by the open PR"
    );
    let a = deliver(
        &app,
        "pull_request",
        "m-1",
        &pr_closed(url, true),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(a["outcome"], format!("merged {first}"));
    assert_eq!(app.task_row(&first).await.0, "merged");
    let actor: String = sqlx::query_scalar(
        "select actor from audit_events where task_id = $1 and to_status = 'merged'",
    )
    .bind(&first)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(actor, "github");
    let leases = app.poll(&w).await;
    assert_eq!(
        leases[0]["task_id"],
        second.as_str(),
        "the freed slot went to the next task"
    );

    // a redelivery is a no-op; a new delivery of the same news changes nothing either
    let events_before = audit_kinds(&app.pool, &first).await.len();
    let again = deliver(
        &app,
        "pull_request",
        "m-1",
        &pr_closed(url, true),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert!(again["outcome"].as_str().unwrap().starts_with("duplicate"));
    deliver(
        &app,
        "pull_request",
        "m-2",
        &pr_closed(url, true),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(audit_kinds(&app.pool, &first).await.len(), events_before);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn a_closed_pr_counts_a_failed_attempt_and_other_events_are_recorded_or_ignored(
    pool: PgPool,
) {
    let app = app_with_github(pool, "http://127.0.0.1:9").await;
    app.create_repo("acme/widgets", 2, false).await;
    let w = app.register("w", &[], 5, 2).await;
    app.create_task(json!({"repo": "acme/widgets", "title": "t"}))
        .await;
    let url = "https://github.com/acme/widgets/pull/9";
    let task = pr_opened(&app, &w, url).await;
    // opened / reopened go into the task's history
    let opened = json!({"action": "reopened", "pull_request": {"html_url": url}, "repository": {"full_name": "acme/widgets"}});
    deliver(&app, "pull_request", "o-1", &opened, Some(SECRET))
        .await
        .expect(StatusCode::OK);
    assert!(audit_kinds(&app.pool, &task)
        .await
        .contains(&"github_pr_reopened".to_string()));
    deliver(
        &app,
        "pull_request",
        "c-1",
        &pr_closed(url, false),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    let (status, attempt, _) = app.task_row(&task).await;
    assert_eq!(
        (status.as_str(), attempt),
        ("ready", 1),
        "closed unmerged: a failed attempt"
    );
    // a PR no task has, and events the pool does not read: 202, nothing changes
    let a = deliver(
        &app,
        "pull_request",
        "c-2",
        &pr_closed("https://github.com/acme/widgets/pull/77", true),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    assert!(a["outcome"].as_str().unwrap().starts_with("ignored"));
    deliver(
        &app,
        "star",
        "s-1",
        &json!({"action": "created"}),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    // a body that is not JSON (but signed) is a 400
    send_raw(
        &app,
        "issues",
        "x-1",
        b"not json".to_vec(),
        Some(signature::sign(SECRET, b"not json")),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn a_labelled_issue_is_imported_once_and_closing_it_cancels_the_task(pool: PgPool) {
    let app = app_with_github(pool, "http://127.0.0.1:9").await;
    app.create_repo("acme/widgets", 2, true).await;
    // labelled with something else: ignored
    deliver(
        &app,
        "issues",
        "l-0",
        &issue_event("labeled", 7, &["bug"], Some("bug")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    let labels = ["owp", "skill:rust", "area:parser", "points:2"];
    let a = deliver(
        &app,
        "issues",
        "l-1",
        &issue_event("labeled", 7, &labels, Some("owp")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert!(
        a["outcome"]
            .as_str()
            .unwrap()
            .starts_with("imported github:acme/widgets#7"),
        "{a}"
    );
    let row: (String, String, Vec<String>, Option<String>, i32) = sqlx::query_as(
        "select id, title, required_skills, area, estimate_points from tasks where external_id = 'github:acme/widgets#7'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        (row.1.as_str(), row.2.clone(), row.3.as_deref(), row.4),
        ("Issue 7", vec!["rust".to_string()], Some("parser"), 2)
    );
    // labelled again (another delivery): still one task
    deliver(
        &app,
        "issues",
        "l-2",
        &issue_event("labeled", 7, &labels, Some("owp")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    let n: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    // an issue of a repo the pool does not know is not imported
    let mut foreign = issue_event("labeled", 8, &["owp"], Some("owp"));
    foreign["repository"]["full_name"] = json!("other/repo");
    deliver(&app, "issues", "l-3", &foreign, Some(SECRET))
        .await
        .expect(StatusCode::ACCEPTED);
    // the issue closes: its task is cancelled, by github
    let w = app.register("w", &["rust"], 5, 2).await;
    assert_eq!(app.poll(&w).await.len(), 1);
    let c = deliver(
        &app,
        "issues",
        "x-1",
        &issue_event("closed", 7, &labels, None),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(c["outcome"], format!("cancelled {}", row.0));
    assert_eq!(app.task_row(&row.0).await.0, "cancelled");
    let lost = app
        .report(&w, &row.0, json!({"status": "in_progress"}))
        .await;
    assert_eq!(lost.body["details"], "lease_lost");
    let actor: String =
        sqlx::query_scalar("select actor from audit_events where kind = 'task_cancelled'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(actor, "github");
    assert_invariants(&app.pool).await;
}

/// Runs the leader's outbox duty until nothing is due for `within`.
async fn drain_outbox(app: &TestApp, gh: &GitHub) {
    for _ in 0..100 {
        let pending: i64 = sqlx::query_scalar(
            "select count(*) from github_outbox where delivered_at is null and gave_up_at is null",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if pending == 0 {
            return;
        }
        if let Some(wait) = github_outbox::run(&app.ctx, gh).await.unwrap() {
            tokio::time::sleep(wait).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("the outbox did not drain");
}

#[sqlx::test]
async fn write_back_goes_through_the_outbox_once_even_when_github_fails(pool: PgPool) {
    let fake = FakeGithub::default();
    let api = fake.start().await;
    let app = app_with_github(pool, &api).await;
    let gh = GitHub::new(&api, Some("gh-token"));
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/widgets", "max_open_prs": 3, "github_write_back": true})),
    )
    .await
    .expect(StatusCode::CREATED);
    let repos = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(repos["repositories"][0]["github_write_back"], true);
    // a task from issue 7, and one not from GitHub (never written back)
    deliver(
        &app,
        "issues",
        "l-1",
        &issue_event("labeled", 7, &["owp"], Some("owp")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    app.create_task(json!({"repo": "acme/widgets", "title": "local", "priority": -5}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    let mut w_handle = w.clone();
    w_handle.id = w.id.clone();

    // leased: GitHub fails twice, then accepts; the comment lands once
    fake.with(|g| g.fail_next = 2);
    let leases = app.poll(&w).await;
    assert_eq!(leases.len(), 2);
    let task = leases.iter().find(|l| l["title"] == "Issue 7").unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    drain_outbox(&app, &gh).await;
    let issue = "acme/widgets#7";
    assert_eq!(fake.comments(issue).len(), 1, "{:?}", fake.comments(issue));
    assert!(fake.comments(issue)[0].contains(&task));
    assert_eq!(fake.labels(issue), vec!["owp:in-progress"]);
    assert!(fake.with(|g| g
        .calls
        .iter()
        .all(|c| c.2.as_deref() == Some("Bearer gh-token"))));

    // pr_opened: GitHub takes the comment but the answer is lost (502); the retry finds
    // the comment by its marker and does not post it again. Then GitHub rate-limits once.
    fake.with(|g| g.lose_next_answer = true);
    let url = "https://github.com/acme/widgets/pull/12";
    app.report(&w, &task, json!({"status": "pr_opened", "pr_url": url}))
        .await
        .expect(StatusCode::OK);
    drain_outbox(&app, &gh).await;
    assert_eq!(fake.comments(issue).len(), 2, "{:?}", fake.comments(issue));
    // the bot names the PR by number, never the worker's link or handle
    assert!(fake.comments(issue)[1].contains("#12"));
    assert!(!fake.comments(issue)[1].contains("http"));
    assert_eq!(fake.labels(issue), vec!["owp:pr-open"]);
    fake.with(|g| g.rate_limit_next = true);
    deliver(
        &app,
        "pull_request",
        "m-1",
        &pr_closed(url, true),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    drain_outbox(&app, &gh).await;
    let comments = fake.comments(issue);
    assert_eq!(comments.len(), 3, "{comments:?}");
    assert!(comments[2].contains("merged"));
    assert_eq!(fake.labels(issue), vec!["owp:done"]);
    let delivered = app
        .admin(Method::GET, "/v1/admin/github/outbox?state=delivered", None)
        .await
        .expect(StatusCode::OK);
    let events: Vec<&str> = delivered["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["merged", "pr_opened", "leased"]);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn write_back_gives_up_after_its_bound_and_shows_it(pool: PgPool) {
    let fake = FakeGithub::default();
    let api = fake.start().await;
    let app = app_with_github(pool, &api).await;
    let gh = GitHub::new(&api, Some("gh-token"));
    write_back_repo_with_issue(&app, 9).await;
    fake.with(|g| g.broken_issues.push("acme/widgets#9".into()));
    let w = app.register("w", &[], 5, 2).await;
    let task = app.poll(&w).await[0]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    drain_outbox(&app, &gh).await;
    let failed = app
        .admin(Method::GET, "/v1/admin/github/outbox?state=failed", None)
        .await
        .expect(StatusCode::OK);
    let entry = &failed["entries"][0];
    assert_eq!(
        (entry["task_id"].as_str(), entry["attempts"].as_i64()),
        (Some(task.as_str()), Some(3))
    );
    assert!(entry["last_error"].as_str().unwrap().contains("500"));
    assert!(audit_kinds(&app.pool, &task)
        .await
        .contains(&"github_write_back_failed".to_string()));
    let pending = app
        .admin(Method::GET, "/v1/admin/github/outbox", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(pending["entries"], json!([]));
    app.admin(Method::GET, "/v1/admin/github/outbox?state=nonsense", None)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
}

#[sqlx::test]
async fn sync_reconciles_open_prs_and_imports_labelled_issues(pool: PgPool) {
    let fake = FakeGithub::default();
    let api = fake.start().await;
    let app = app_with_github(pool, &api).await;
    app.create_repo("acme/widgets", 10, false).await;
    let w = app.register("w", &[], 10, 5).await;
    for i in 0..3 {
        app.create_task(json!({"repo": "acme/widgets", "title": format!("t{i}")}))
            .await;
    }
    let leases = app.poll(&w).await;
    let mut ids = vec![];
    for (lease, n) in leases.iter().zip([5, 6, 8]) {
        let id = lease["task_id"].as_str().unwrap().to_string();
        app.report(&w, &id, json!({"status": "pr_opened", "pr_url": format!("https://github.com/acme/widgets/pull/{n}")}))
            .await
            .expect(StatusCode::OK);
        ids.push(id);
    }
    fake.with(|g| {
        g.pulls.insert("acme/widgets#5".into(), ("closed".into(), true));
        g.pulls.insert("acme/widgets#6".into(), ("closed".into(), false));
        g.pulls.insert("acme/widgets#8".into(), ("open".into(), false));
        for n in [20, 21] {
            g.issues.push(json!({"number": n, "title": format!("Issue {n}"), "body": null,
                "html_url": format!("https://github.com/acme/widgets/issues/{n}"), "labels": [{"name": "owp"}]}));
        }
        g.issues.push(json!({"number": 22, "title": "a PR", "html_url": "https://github.com/acme/widgets/pull/22",
            "labels": [{"name": "owp"}], "pull_request": {}}));
    });
    let s = app
        .admin(Method::POST, "/v1/github/repos/acme/widgets/sync", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(s["prs_checked"], 3);
    assert_eq!(s["merged"], json!([ids[0]]));
    assert_eq!(s["closed"], json!([ids[1]]));
    assert_eq!(s["imported"].as_array().unwrap().len(), 2);
    assert_eq!(s["errors"], json!([]));
    assert_eq!(app.task_row(&ids[0]).await.0, "merged");
    assert_eq!(app.task_row(&ids[1]).await.0, "ready");
    assert_eq!(app.task_row(&ids[2]).await.0, "pr_opened");
    // again: nothing new
    let again = app
        .admin(Method::POST, "/v1/github/repos/acme/widgets/sync", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (
            again["prs_checked"].as_i64(),
            again["already_imported"].as_i64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(again["imported"], json!([]));
    app.admin(Method::POST, "/v1/github/repos/acme/nope/sync", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn only_the_leader_delivers_write_back_and_it_does_so_on_its_own(pool: PgPool) {
    let fake = FakeGithub::default();
    let api = fake.start().await;
    let app = app_with_github(pool, &api).await;
    write_back_repo_with_issue(&app, 3).await;
    let duty = app
        .ctx
        .tasks
        .spawn("github_outbox", github_outbox::run_service(app.ctx.clone()));
    let w = app.register("w", &[], 5, 2).await;
    assert_eq!(app.poll(&w).await.len(), 1);
    // a replica that does not lead delivers nothing
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(fake.comments("acme/widgets#3").is_empty());
    app.ctx
        .is_leader
        .store(true, std::sync::atomic::Ordering::Relaxed);
    eventually(
        "the leader delivered the comment",
        Duration::from_secs(10),
        || async {
            fake.comments("acme/widgets#3").len() == 1
                && fake.labels("acme/widgets#3") == ["owp:in-progress"]
        },
    )
    .await;
    app.ctx.stop();
    tokio::time::timeout(Duration::from_secs(5), duty)
        .await
        .expect("the duty stops with the replica")
        .unwrap();
}
