//! The protocol's v0.1 names, each accepted where v0.1 clients send it (docs/PROTOCOL.md,
//! "Compatibility with v0.1"); answers keep the service's own names.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn get_v1_describes_the_service_without_a_token(pool: PgPool) {
    let app = spawn_app(pool).await;
    let info = app
        .call(Method::GET, "/v1", &[], None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(info["name"], "owp-pool");
    assert_eq!(info["protocol_version"], "1");
    assert_eq!(info["compatible_with"], json!(["0.1"]));
    // where it points is served
    let doc = app
        .call(Method::GET, info["openapi"].as_str().unwrap(), &[], None)
        .await
        .expect(StatusCode::OK);
    assert!(
        doc["paths"]["/v1"]["get"].is_object(),
        "the document lists GET /v1"
    );
}

#[sqlx::test]
async fn tier_maintainer_is_core(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.register("old-client", &[], 5, 1).await;
    let path = format!("/v1/workers/{}/trust-tier", w.id);
    let set = app
        .admin(
            Method::POST,
            &path,
            Some(json!({"tier": "maintainer", "reason": "v0.1 name"})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(set["trust_tier"], "core", "{set}");
    let shown = app
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(shown["trust_tier"], "core");
    // any other unknown name is still refused, naming the field
    app.admin(
        Method::POST,
        &path,
        Some(json!({"tier": "owner", "reason": "no such tier"})),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "validation_error");
}

#[sqlx::test]
async fn analytics_periods_by_their_v01_names(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 5, false).await;
    for (v01, ours) in [
        ("last_7_days", "7d"),
        ("last_30_days", "30d"),
        ("last_90_days", "90d"),
    ] {
        let a = app
            .admin(
                Method::GET,
                &format!("/v1/analytics/repositories/acme/r?period={v01}"),
                None,
            )
            .await
            .expect(StatusCode::OK);
        assert_eq!(a["period"], ours, "{v01}: {a}");
    }
    let bad = app
        .admin(
            Method::GET,
            "/v1/analytics/repositories/acme/r?period=last_year",
            None,
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(bad["details"].as_str().unwrap().contains("period"), "{bad}");
}

/// The audit feed's events by kind, as `event_type` filters them.
async fn kinds(app: &TestApp, event_type: &str) -> Vec<Value> {
    let page = app
        .admin(
            Method::GET,
            &format!("/v1/audit/events?event_type={event_type}"),
            None,
        )
        .await
        .expect(StatusCode::OK);
    page["events"].as_array().unwrap().clone()
}

#[sqlx::test]
async fn audit_filters_by_v01_event_names(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 5, false).await;
    let w = app.register("w", &[], 5, 2).await;
    let done = app
        .create_task(json!({"repo": "acme/r", "title": "done"}))
        .await;
    let held = app
        .create_task(json!({"repo": "acme/r", "title": "held"}))
        .await;
    assert_eq!(app.poll(&w).await.len(), 2);
    for (task, status) in [
        (&done, "in_progress"),
        (&done, "completed"),
        (&held, "in_progress"),
    ] {
        app.report(&w, task, json!({"status": status}))
            .await
            .expect(StatusCode::OK);
    }
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/trust-tier", w.id),
        Some(json!({"tier": "basic", "reason": "earned"})),
    )
    .await
    .expect(StatusCode::OK);

    let assigned = kinds(&app, "task_assigned").await;
    assert_eq!(assigned.len(), 2, "{assigned:?}");
    assert!(assigned.iter().all(|e| e["event_type"] == "lease_granted"));

    // only the change to completed, not the two to in_progress
    let completed = kinds(&app, "task_completed").await;
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!(completed[0]["target"], done.as_str());
    assert_eq!(completed[0]["details"]["to_status"], "completed");

    let tiers = kinds(&app, "trust_tier_changed").await;
    assert_eq!(tiers.len(), 1, "{tiers:?}");
    assert_eq!(tiers[0]["event_type"], "worker_trust_tier_changed");
    // the service's own names keep working
    assert_eq!(kinds(&app, "lease_granted").await.len(), 2);
}

/// The task imported from acme/widgets issue `number`: (skills, points, priority).
async fn imported(app: &TestApp, number: u64) -> (Vec<String>, i32, i32) {
    sqlx::query_as(
        "select required_skills, estimate_points, priority from tasks where external_id = $1",
    )
    .bind(format!("github:acme/widgets#{number}"))
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn a_webhook_imports_pool_ready_issues_with_v01_labels(pool: PgPool) {
    use crate::github::{app_with_github, deliver, issue_event, SECRET};
    let app = app_with_github(pool, "http://127.0.0.1:9").await;
    app.create_repo("acme/widgets", 5, true).await;
    let labels = ["pool:ready", "skills:Rust,sql", "size:L", "priority:high"];
    let a = deliver(
        &app,
        "issues",
        "v01-1",
        &issue_event("labeled", 9, &labels, Some("pool:ready")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert!(
        a["outcome"].as_str().unwrap().starts_with("imported"),
        "{a}"
    );
    assert_eq!(
        imported(&app, 9).await,
        (vec!["rust".to_string(), "sql".to_string()], 5, 50)
    );
    // opened already carrying it
    deliver(
        &app,
        "issues",
        "v01-2",
        &issue_event("opened", 10, &["pool:ready", "size:XS"], None),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(imported(&app, 10).await, (vec![], 1, 10));
    // another label is still no import
    let ignored = deliver(
        &app,
        "issues",
        "v01-3",
        &issue_event("labeled", 11, &["pool:later"], Some("pool:later")),
        Some(SECRET),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    assert!(
        ignored["outcome"]
            .as_str()
            .unwrap()
            .contains("owp or pool:ready"),
        "{ignored}"
    );
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn sync_imports_pool_ready_issues_beside_the_configured_label(pool: PgPool) {
    use crate::support::fake_github::FakeGithub;
    let fake = FakeGithub::default();
    let api = fake.start().await;
    let app = crate::github::app_with_github(pool, &api).await;
    app.create_repo("acme/widgets", 10, false).await;
    fake.with(|g| {
        for (n, labels) in [
            (30, json!([{"name": "owp"}])),
            (31, json!([{"name": "pool:ready"}, {"name": "size:M"}])),
            (32, json!([{"name": "owp"}, {"name": "pool:ready"}])),
            (33, json!([{"name": "bug"}])),
        ] {
            g.issues.push(json!({"number": n, "title": format!("Issue {n}"), "body": null,
                "html_url": format!("https://github.com/acme/widgets/issues/{n}"), "labels": labels}));
        }
    });
    let s = app
        .admin(Method::POST, "/v1/github/repos/acme/widgets/sync", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(s["errors"], json!([]));
    // 32 carries both labels: one task; 33 neither: none
    assert_eq!(s["imported"].as_array().unwrap().len(), 3, "{s}");
    assert_eq!(imported(&app, 31).await.1, 3);
    let unlabelled: i64 = sqlx::query_scalar(
        "select count(*) from tasks where external_id = 'github:acme/widgets#33'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(unlabelled, 0);
    assert_invariants(&app.pool).await;
}

/// `owp admin import FILE` with `extra` flags.
#[sqlx::test]
async fn the_cli_imports_a_v01_bare_list_with_repo(pool: PgPool) {
    use crate::support::cli::{self, Scratch};
    let app = spawn_app(pool).await;
    app.create_repo("acme/widgets", 5, true).await;
    let dir = Scratch::new();
    let file = dir.path("v01.yaml");
    std::fs::write(
        &file,
        "- title: Fix the parser\n  skills: [rust]\n  size: S\n  priority: critical\n- title: Docs\n",
    )
    .unwrap();
    // no repo anywhere: refused, nothing sent
    let file = file.to_str().unwrap();
    let out = crate::support::cli::import(&dir.0, &app.base, file, &[]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--repo"));
    let out =
        crate::support::cli::import(&dir.0, &app.base, file, &["--repo", "acme/widgets"]).await;
    let answer: Value = serde_json::from_str(&cli::ok(&out)).unwrap();
    assert_eq!(answer["created"], 2);
    let row: (Vec<String>, i32, i32) = sqlx::query_as(
        "select required_skills, estimate_points, priority from tasks where title = 'Fix the parser'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(row, (vec!["rust".to_string()], 2, 100));
    // idempotent like any import
    let again =
        crate::support::cli::import(&dir.0, &app.base, file, &["--repo", "acme/widgets"]).await;
    let again: Value = serde_json::from_str(&cli::ok(&again)).unwrap();
    assert_eq!(again["created"], 0);
}
