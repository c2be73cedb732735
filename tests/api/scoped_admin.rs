//! Admin tokens scoped to repositories (`OWP_ADMIN_TOKEN=name@owner/repo=<tok>`): a
//! maintainer manages its repositories' settings and tasks, reads their audit events and
//! analytics, and reaches nothing else, on every route that could lead elsewhere.

use owp_pool::app::AppContext;
use owp_pool::auth::{Registration, TokenSet};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::{cli, pr_link, spawn_ctx, test_settings, TestApp, ADMIN};

const CAROL: &str = "carol-scoped-token-0001";
const ROOT: &str = "root-pool-wide-token-01";

async fn pool_with_scoped_admin(pool: PgPool) -> TestApp {
    pool_with_scoped_admin_and(pool, test_settings()).await
}

async fn pool_with_scoped_admin_and(pool: PgPool, settings: owp_pool::config::Settings) -> TestApp {
    let ctx = AppContext::new(
        pool,
        settings,
        TokenSet::named([
            format!("carol@acme/web={CAROL}"),
            format!("carol@acme/docs={CAROL}"),
            format!("root={ROOT}"),
            ADMIN.to_string(),
        ]),
        Registration::Open,
    );
    spawn_ctx(ctx).await
}

async fn carol(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let a = app
        .call(method, path, &[("x-admin-token", CAROL)], body)
        .await;
    (a.status, a.body)
}

/// acme/web (carol's) and acme/api (not hers), one task each; (web task, api task).
async fn two_repos(app: &TestApp) -> (String, String) {
    let (s, _) = carol(
        app,
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/web"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    app.create_repo("acme/api", 3, false).await;
    let (s, web) = carol(
        app,
        Method::POST,
        "/v1/admin/tasks",
        Some(json!({"repo": "acme/web", "title": "web task"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{web}");
    let api = app
        .create_task(json!({"repo": "acme/api", "title": "api task"}))
        .await;
    (web["task_id"].as_str().unwrap().to_string(), api)
}

#[sqlx::test]
async fn a_scoped_token_changes_only_its_own_repositories(pool: PgPool) {
    let app = pool_with_scoped_admin(pool.clone()).await;
    let (web, api) = two_repos(&app).await;

    // settings and tasks of another repository: refused, nothing written
    let (s, b) = carol(
        &app,
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/api", "max_open_prs": 50})),
    )
    .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let budget: i32 =
        sqlx::query_scalar("select max_open_prs from repositories where repo = 'acme/api'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(budget, 3);
    let before: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    let (s, _) = carol(
        &app,
        Method::POST,
        "/v1/admin/tasks",
        Some(
            json!([{"repo": "acme/web", "title": "ok"}, {"repo": "acme/api", "title": "not hers"}]),
        ),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "one foreign task refuses the whole import"
    );
    let after: i64 = sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(before, after);

    // another repository's task is as good as absent: read, edit, requeue, cancel, merge
    for (method, path, body) in [
        (Method::GET, format!("/v1/tasks/{api}"), None),
        (
            Method::PATCH,
            format!("/v1/tasks/{api}"),
            Some(json!({"priority": 9})),
        ),
        (Method::POST, format!("/v1/tasks/{api}/requeue"), None),
        (Method::POST, format!("/v1/tasks/{api}/cancel"), None),
        (
            Method::POST,
            format!("/v1/tasks/{api}/status"),
            Some(json!({"status": "merged"})),
        ),
    ] {
        let (s, b) = carol(&app, method.clone(), &path, body).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{method} {path}"
        );
    }
    let (status, priority): (String, i32) =
        sqlx::query_as("select status, priority from tasks where id = $1")
            .bind(&api)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), priority), ("ready", 10), "untouched");
    let (s, b) = carol(
        &app,
        Method::POST,
        "/v1/tasks/cancel",
        Some(json!({"task_ids": [web, api]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["done"], json!([web]));
    assert_eq!(
        b["skipped"],
        json!([{"task_id": api, "reason": "not_found"}])
    );

    // its own: edited and audited under its name
    let (s, _) = carol(
        &app,
        Method::POST,
        format!("/v1/tasks/{web}/requeue").as_str(),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let actor: String = sqlx::query_scalar(
        "select actor from audit_events where task_id = $1 order by id desc limit 1",
    )
    .bind(&web)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(actor, "admin:carol");
    assert_invariants_hold(&pool).await;
}

async fn assert_invariants_hold(pool: &PgPool) {
    crate::support::assert_invariants(pool).await;
}

#[sqlx::test]
async fn a_scoped_token_reads_only_its_own_repositories(pool: PgPool) {
    let app = pool_with_scoped_admin(pool).await;
    let (web, _api) = two_repos(&app).await;
    let w = app.register("w", &[], 5, 2).await;
    assert_eq!(
        app.poll(&w).await.len(),
        2,
        "the worker holds one task of each"
    );

    let (_, repos) = carol(&app, Method::GET, "/v1/admin/repos", None).await;
    let names: Vec<&str> = repos["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["repo"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme/web"]);
    let (_, tasks) = carol(&app, Method::GET, "/v1/tasks", None).await;
    let ids: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [web.as_str()]);
    let (s, _) = carol(&app, Method::GET, "/v1/tasks?repo=acme/api", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, t) = carol(&app, Method::GET, &format!("/v1/tasks/{web}"), None).await;
    assert_eq!((s, t["repo"].as_str()), (StatusCode::OK, Some("acme/web")));

    // audit: its repositories' events only, never another's or a worker's own
    let (_, events) = carol(&app, Method::GET, "/v1/audit/events?limit=200", None).await;
    let events = events["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e["details"]["repo"] == "acme/web"),
        "{events:?}"
    );
    let (s, _) = carol(&app, Method::GET, "/v1/audit/events?repo=acme/api", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // the export as well
    let exported = app
        .http
        .get(format!("{}/v1/audit/export", app.base))
        .header("x-admin-token", CAROL)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), events.len());
    assert!(lines.iter().all(|e| e["details"]["repo"] == "acme/web"));
    let (s, _) = carol(&app, Method::GET, "/v1/audit/export?repo=acme/api", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // the pool-wide admin filters by repository too
    let all = app
        .admin(Method::GET, "/v1/audit/events?repo=acme/api", None)
        .await
        .expect(StatusCode::OK);
    assert!(all["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["details"]["repo"] == "acme/api"));

    let (s, _) = carol(
        &app,
        Method::GET,
        "/v1/analytics/repositories/acme/web",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = carol(
        &app,
        Method::GET,
        "/v1/analytics/repositories/acme%2Fapi",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = carol(&app, Method::POST, "/v1/github/repos/acme/api/sync", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // workers: listed (allow lists name them), their leases elsewhere not shown
    let (s, list) = carol(&app, Method::GET, "/v1/workers", None).await;
    assert_eq!(
        (s, list["workers"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );
    let (_, detail) = carol(&app, Method::GET, &format!("/v1/workers/{}", w.id), None).await;
    let held: Vec<&str> = detail["leases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["repo"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["acme/web"]);
}

#[sqlx::test]
async fn pool_wide_routes_refuse_a_scoped_token(pool: PgPool) {
    let app = pool_with_scoped_admin(pool).await;
    two_repos(&app).await;
    let w = app.register("w", &[], 5, 2).await;
    for (method, path, body) in [
        (Method::GET, "/v1/admin/state".to_string(), None),
        (Method::GET, "/v1/admin/state/stream".to_string(), None),
        (Method::GET, "/v1/admin/github/outbox".to_string(), None),
        (Method::GET, "/v1/admin/throughput".to_string(), None),
        (Method::POST, format!("/v1/workers/{}/pause", w.id), None),
        (Method::POST, format!("/v1/workers/{}/revoke", w.id), None),
        (Method::POST, format!("/v1/workers/{}/token", w.id), None),
        (
            Method::POST,
            format!("/v1/workers/{}/trust-tier", w.id),
            Some(json!({"trust_tier": "trusted"})),
        ),
        (
            Method::POST,
            "/v1/dashboard/session".to_string(),
            Some(json!({"admin_token": CAROL})),
        ),
    ] {
        let (s, b) = carol(&app, method.clone(), &path, body).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}: {b}"
        );
    }
    let detail = app
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    let paused = detail["paused"].as_bool().unwrap() || detail["revoked"].as_bool().unwrap();
    assert!(!paused);
    // the same routes answer a pool-wide named token
    let root = app
        .call(
            Method::GET,
            "/v1/admin/state",
            &[("x-admin-token", ROOT)],
            None,
        )
        .await;
    assert_eq!(root.status, StatusCode::OK);
}

#[sqlx::test]
async fn a_scoped_admin_merges_its_own_pr(pool: PgPool) {
    let app = pool_with_scoped_admin(pool).await;
    let (web, _) = two_repos(&app).await;
    let w = app.register("w", &[], 5, 2).await;
    app.poll(&w).await;
    app.report(
        &w,
        &web,
        json!({"status": "pr_opened", "pr_url": pr_link("acme/web")}),
    )
    .await
    .expect(StatusCode::OK);
    let (s, b) = carol(
        &app,
        Method::POST,
        &format!("/v1/tasks/{web}/status"),
        Some(json!({"status": "merged"})),
    )
    .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("merged")),
        "{b}"
    );
}

#[sqlx::test]
async fn the_admin_cli_works_with_a_scoped_token(pool: PgPool) {
    let app = pool_with_scoped_admin(pool).await;
    two_repos(&app).await;
    let dir = cli::Scratch::new();
    let run = |args: &'static [&'static str]| {
        let mut all = vec![
            "admin",
            "--url",
            app.base.as_str(),
            "--admin-token",
            CAROL,
            "--json",
        ];
        all.extend_from_slice(args);
        let dir = &dir;
        async move { cli::run(&dir.0, &all).await }
    };
    let err = cli::failed(&run(&["repo", "add", "acme/api", "--max-open-prs", "9"]).await);
    assert!(err.contains("scoped to other repositories"), "{err}");
    cli::ok(&run(&["repo", "set", "acme/web", "--max-open-prs", "9"]).await);
    let tasks: Value = serde_json::from_str(&cli::ok(&run(&["task", "list"]).await)).unwrap();
    let repos: Vec<&str> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["repo"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["acme/web"]);
    let err = cli::failed(&run(&["state"]).await);
    assert!(err.contains("pool-wide admin token"), "{err}");
}

#[sqlx::test]
async fn a_scoped_admin_sees_and_closes_only_its_own_stale_prs(pool: PgPool) {
    let mut settings = test_settings();
    settings.pr_stale_after = std::time::Duration::from_millis(100);
    let app = pool_with_scoped_admin_and(pool, settings).await;
    let (web, api) = two_repos(&app).await;
    let w = app.register("w", &[], 5, 2).await;
    for l in app.poll(&w).await {
        let (task, repo) = (l["task_id"].as_str().unwrap(), l["repo"].as_str().unwrap());
        app.report(
            &w,
            task,
            json!({"status": "pr_opened", "lease_id": l["lease_id"], "pr_url": pr_link(repo)}),
        )
        .await
        .expect(StatusCode::OK);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (s, listed) = carol(&app, Method::GET, "/v1/admin/stale-prs", None).await;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [web.as_str()]);
    let (s, _) = carol(&app, Method::GET, "/v1/admin/stale-prs?repo=acme/api", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, closed) = carol(
        &app,
        Method::POST,
        "/v1/admin/stale-prs/close",
        Some(json!({"task_ids": [web, api]})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{closed}");
    assert_eq!(closed["closed"], json!([web]));
    assert_eq!(closed["skipped"][0]["task_id"], api.as_str());
    let other = app
        .admin(Method::GET, &format!("/v1/tasks/{api}"), None)
        .await;
    assert_eq!(
        other.body["status"], "pr_opened",
        "another repository's PR stays open"
    );
}
