//! `owp admin import` (YAML) and `owp admin import-github` (against a local fake GitHub):
//! checked as a whole, batched, idempotent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::cli::{self, Scratch};
use crate::support::*;

async fn task_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from tasks")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_yaml_file_is_checked_as_a_whole_and_imported_once(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/widgets", 5, true).await;
    let dir = Scratch::new();
    let good = dir.path("tasks.yaml");
    std::fs::write(
        &good,
        r#"repo: acme/widgets
tasks:
  - title: Fix the parser
    description: It breaks on empty input.
    required_skills: [Rust, sql]
    estimate_points: 2
    priority: 20
    area: parser
    tier: 1
    id: PARSE-1
  - title: Write the docs
  - title: Tidy the CI
    estimate_points: 1
"#,
    )
    .unwrap();
    let out = cli::import(&dir.0, &app.base, good.to_str().unwrap(), &[]).await;
    let answer: Value = serde_json::from_str(&cli::ok(&out)).unwrap();
    assert_eq!(
        (answer["tasks"].as_i64(), answer["created"].as_i64()),
        (Some(3), Some(3))
    );
    let id = answer["task_ids"][0].as_str().unwrap();
    let t = app
        .admin(reqwest::Method::GET, &format!("/v1/tasks/{id}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(t["title"], "Fix the parser");
    assert_eq!(t["required_skills"], json!(["rust", "sql"]));
    assert_eq!(
        (
            t["estimate_points"].as_i64(),
            t["priority"].as_i64(),
            t["tier"].as_i64()
        ),
        (Some(2), Some(20), Some(1))
    );
    assert_eq!(t["area"], "parser");
    assert_eq!(t["external_id"], "yaml:PARSE-1");
    assert_eq!(t["description"], "It breaks on empty input.");

    // again: nothing new, the same ids
    let again: Value = serde_json::from_str(&cli::ok(
        &cli::import(&dir.0, &app.base, good.to_str().unwrap(), &[]).await,
    ))
    .unwrap();
    assert_eq!(
        (again["created"].as_i64(), again["existing"].as_i64()),
        (Some(0), Some(3))
    );
    assert_eq!(again["task_ids"], answer["task_ids"]);
    assert_eq!(task_count(&app.pool).await, 3);

    // one bad task refuses the whole file, naming it; nothing is created
    let bad = dir.path("bad.yaml");
    std::fs::write(
        &bad,
        "repo: acme/widgets\ntasks:\n  - title: fine\n  - title: too big\n    estimate_points: 500\n",
    )
    .unwrap();
    let err = cli::failed(&cli::import(&dir.0, &app.base, bad.to_str().unwrap(), &[]).await);
    assert!(err.contains("tasks[1].estimate_points"), "{err}");
    // a typo in a field name, and a repo the pool does not know
    std::fs::write(
        &bad,
        "repo: acme/widgets\ntasks:\n  - title: x\n    required_skill: [rust]\n",
    )
    .unwrap();
    let err = cli::failed(&cli::import(&dir.0, &app.base, bad.to_str().unwrap(), &[]).await);
    assert!(err.contains("required_skill"), "{err}");
    std::fs::write(&bad, "repo: acme/other\ntasks:\n  - title: x\n").unwrap();
    let err = cli::failed(&cli::import(&dir.0, &app.base, bad.to_str().unwrap(), &[]).await);
    assert!(err.contains("owp admin repo add acme/other"), "{err}");
    assert_eq!(task_count(&app.pool).await, 3);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn a_large_file_goes_in_batches_and_a_rerun_creates_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/big", 5, false).await;
    let dir = Scratch::new();
    let file = dir.path("big.yaml");
    let mut text = String::from("repo: acme/big\ntasks:\n");
    for i in 0..12_000 {
        text.push_str(&format!(
            "  - title: task {i}\n    required_skills: [rust]\n    id: T{i}\n"
        ));
    }
    std::fs::write(&file, text).unwrap();
    let answer: Value = serde_json::from_str(&cli::ok(
        &cli::import(&dir.0, &app.base, file.to_str().unwrap(), &[]).await,
    ))
    .unwrap();
    assert_eq!(answer["created"], 12_000);
    assert_eq!(task_count(&app.pool).await, 12_000);
    let again: Value = serde_json::from_str(&cli::ok(
        &cli::import(&dir.0, &app.base, file.to_str().unwrap(), &[]).await,
    ))
    .unwrap();
    assert_eq!(
        (again["created"].as_i64(), again["existing"].as_i64()),
        (Some(0), Some(12_000))
    );
    assert_eq!(task_count(&app.pool).await, 12_000);
}

/// A fake GitHub issues API: three pages, a pull request among the issues, and a rate
/// limit on the first request for page 2. Records every call.
/// (request URI, Authorization header)
type Call = (String, Option<String>);

/// An imported task: external_id, title, skills, points, area, tier, priority.
type Imported = (String, String, Vec<String>, i32, Option<String>, i16, i32);

#[derive(Clone, Default)]
struct FakeGithub {
    calls: Arc<Mutex<Vec<Call>>>,
    limited_once: Arc<Mutex<bool>>,
}

async fn issues(
    State(gh): State<FakeGithub>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> Response {
    let host = headers.get("host").unwrap().to_str().unwrap().to_string();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    gh.calls.lock().unwrap().push((uri.to_string(), auth));
    assert_eq!(q.get("state").map(String::as_str), Some("open"));
    assert_eq!(q.get("labels").map(String::as_str), Some("owp"));
    let page: u64 = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    if page == 2 && !std::mem::replace(&mut *gh.limited_once.lock().unwrap(), true) {
        let reset = chrono::Utc::now().timestamp() + 1;
        return (
            StatusCode::FORBIDDEN,
            [
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-reset", reset.to_string()),
            ],
            "API rate limit exceeded",
        )
            .into_response();
    }
    let issue = |n: u64, labels: Value| {
        json!({"number": n, "title": format!("Issue {n}"), "body": format!("Body {n}"),
               "html_url": format!("https://github.com/acme/widgets/issues/{n}"), "labels": labels})
    };
    let items = match page {
        1 => vec![
            issue(
                1,
                json!([{"name": "owp"}, {"name": "skill:rust"}, {"name": "points:3"}]),
            ),
            issue(2, json!([{"name": "owp"}, {"name": "area:docs"}])),
        ],
        2 => {
            let mut pr = issue(3, json!([{"name": "owp"}]));
            pr["pull_request"] =
                json!({"url": "https://api.github.com/repos/acme/widgets/pulls/3"});
            vec![pr, issue(4, json!([{"name": "owp"}, {"name": "tier:1"}]))]
        }
        _ => vec![issue(5, json!([{"name": "owp"}, {"name": "priority:30"}]))],
    };
    let mut resp = axum::Json(items).into_response();
    if page < 3 {
        let next = format!("<http://{host}/repos/acme/widgets/issues?state=open&labels=owp&per_page=100&page={}>; rel=\"next\"", page + 1);
        resp.headers_mut().insert("link", next.parse().unwrap());
    }
    resp
}

#[sqlx::test]
async fn github_import_pages_waits_out_the_rate_limit_and_imports_each_issue_once(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/widgets", 5, true).await;
    let gh = FakeGithub::default();
    let router = axum::Router::new()
        .route("/repos/acme/widgets/issues", axum::routing::get(issues))
        .with_state(gh.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    let dir = Scratch::new();
    let args = [
        "admin",
        "--url",
        &app.base,
        "--admin-token",
        ADMIN,
        "--json",
        "import-github",
        "acme/widgets",
        "--label",
        "owp",
        "--github-api",
        &api,
        "--github-token",
        "gh-secret",
    ];
    let started = std::time::Instant::now();
    let answer: Value = serde_json::from_str(&cli::ok(&cli::run(&dir.0, &args).await)).unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the rate limit was waited out"
    );
    assert_eq!(answer["issues"], 4);
    assert_eq!(answer["created"], 4);
    assert_eq!(answer["pull_requests_skipped"], 1);
    {
        let calls = gh.calls.lock().unwrap();
        // pages 1, 2 (limited), 2 again, 3; every call with the token
        assert_eq!(calls.len(), 4, "{calls:?}");
        assert!(calls
            .iter()
            .all(|(_, auth)| auth.as_deref() == Some("Bearer gh-secret")));
    }
    let rows: Vec<Imported> = sqlx::query_as(
        "select external_id, title, required_skills, estimate_points, area, tier, priority
         from tasks order by external_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "github:acme/widgets#1",
            "github:acme/widgets#2",
            "github:acme/widgets#4",
            "github:acme/widgets#5"
        ]
    );
    assert_eq!(
        (rows[0].2.clone(), rows[0].3),
        (vec!["rust".to_string()], 3)
    );
    assert_eq!(rows[1].4.as_deref(), Some("docs"));
    assert_eq!(rows[2].5, 1);
    assert_eq!(rows[3].6, 30);

    // a re-run finds the same issues and creates nothing
    let again: Value = serde_json::from_str(&cli::ok(&cli::run(&dir.0, &args).await)).unwrap();
    assert_eq!(
        (again["created"].as_i64(), again["existing"].as_i64()),
        (Some(0), Some(4))
    );
    assert_eq!(task_count(&app.pool).await, 4);
}
