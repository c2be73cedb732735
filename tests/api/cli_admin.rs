//! `owp admin`, `owp demo` and `owp completions` as a maintainer runs them: the real
//! binary against the real server.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::support::cli::{self, Scratch};
use crate::support::replicas::database_url;
use crate::support::*;

/// `owp admin <args> --json` against `app`, parsed.
async fn admin_json(app: &TestApp, dir: &Scratch, args: &[&str]) -> Value {
    let mut all = vec![
        "admin",
        "--url",
        &app.base,
        "--admin-token",
        ADMIN,
        "--json",
    ];
    all.extend_from_slice(args);
    let out = cli::run(&dir.0, &all).await;
    serde_json::from_str(&cli::ok(&out)).expect("--json prints JSON")
}

async fn admin_text(app: &TestApp, dir: &Scratch, args: &[&str]) -> String {
    let mut all = vec!["admin", "--url", &app.base, "--admin-token", ADMIN];
    all.extend_from_slice(args);
    cli::ok(&cli::run(&dir.0, &all).await)
}

#[sqlx::test]
async fn admin_commands_drive_the_operator_api(pool: PgPool) {
    let app = spawn_app(pool).await;
    let dir = Scratch::new();

    // repos: add, set keeps what it is not told, list as JSON and as a table
    let added = admin_json(
        &app,
        &dir,
        &["repo", "add", "acme/widgets", "--max-open-prs", "4"],
    )
    .await;
    assert_eq!(added, json!({"repo": "acme/widgets", "created": true}));
    admin_json(
        &app,
        &dir,
        &["repo", "set", "acme/widgets", "--area-locks", "false"],
    )
    .await;
    let repos = admin_json(&app, &dir, &["repo", "list"]).await;
    let r = &repos["repositories"][0];
    assert_eq!(
        (
            r["max_open_prs"].as_i64(),
            r["area_locks_enabled"].as_bool()
        ),
        (Some(4), Some(false))
    );
    // who may take work there
    admin_json(
        &app,
        &dir,
        &[
            "repo",
            "set",
            "acme/widgets",
            "--allow-workers",
            "w_a,w_b",
            "--deny-workers",
            "w_b",
            "--min-trust-tier",
            "basic",
            "--fair-share",
            "3",
        ],
    )
    .await;
    let r = &admin_json(&app, &dir, &["repo", "list"]).await["repositories"][0];
    assert_eq!(
        (
            &r["allow_workers"],
            &r["deny_workers"],
            &r["min_trust_tier"],
            &r["fair_share"]
        ),
        (
            &json!(["w_a", "w_b"]),
            &json!(["w_b"]),
            &json!("basic"),
            &json!(3)
        )
    );
    admin_json(
        &app,
        &dir,
        &[
            "repo",
            "set",
            "acme/widgets",
            "--allow-workers",
            "",
            "--min-trust-tier",
            "0",
        ],
    )
    .await;
    let r = &admin_json(&app, &dir, &["repo", "list"]).await["repositories"][0];
    assert_eq!(
        (
            &r["allow_workers"],
            &r["deny_workers"],
            &r["min_trust_tier"]
        ),
        (&Value::Null, &json!(["w_b"]), &json!("untrusted"))
    );
    let table = admin_text(&app, &dir, &["repo", "list"]).await;
    assert!(
        table.lines().next().unwrap().starts_with("repo") && table.contains("acme/widgets"),
        "{table}"
    );
    let missing = cli::run(
        &dir.0,
        &[
            "admin",
            "--url",
            &app.base,
            "--admin-token",
            ADMIN,
            "repo",
            "set",
            "acme/nope",
            "--max-open-prs",
            "1",
        ],
    )
    .await;
    assert!(cli::failed(&missing).contains("owp admin repo add acme/nope"));

    // tasks: add, list with filters, show, requeue, cancel
    let created = admin_json(
        &app,
        &dir,
        &[
            "task",
            "add",
            "--repo",
            "acme/widgets",
            "--title",
            "Fix it",
            "--skills",
            "rust,sql",
            "--points",
            "3",
            "--area",
            "parser",
        ],
    )
    .await;
    let task = created["task_id"].as_str().unwrap().to_string();
    assert_eq!(created["created"], true);
    let listed = admin_json(
        &app,
        &dir,
        &[
            "task",
            "list",
            "--status",
            "ready",
            "--repo",
            "acme/widgets",
        ],
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["required_skills"], json!(["rust", "sql"]));
    assert_eq!(listed[0]["estimate_points"], 3);
    let worker = app.register("w1", &["rust", "sql"], 10, 2).await;
    assert_eq!(app.poll(&worker).await.len(), 1);
    let shown = admin_text(&app, &dir, &["task", "show", &task]).await;
    assert!(
        shown.contains("leased") && shown.contains(&worker.id) && shown.contains("lease_granted"),
        "{shown}"
    );
    let requeued = admin_json(&app, &dir, &["task", "requeue", &task]).await;
    assert_eq!(requeued["status"], "ready");
    let lost = app
        .report(&worker, &task, json!({"status": "in_progress"}))
        .await;
    assert_eq!(lost.body["details"], "lease_lost");
    let cancelled = admin_text(&app, &dir, &["task", "cancel", &task]).await;
    assert!(cancelled.contains("cancelled"));
    assert_eq!(app.task_row(&task).await.0, "cancelled");

    // workers: list, show, pause/resume, trust, revoke
    let workers = admin_json(&app, &dir, &["worker", "list"]).await;
    assert_eq!(workers[0]["worker_id"], worker.id.as_str());
    admin_json(&app, &dir, &["worker", "pause", &worker.id]).await;
    let shown = admin_json(&app, &dir, &["worker", "show", &worker.id]).await;
    assert_eq!(shown["paused"], true);
    admin_json(&app, &dir, &["worker", "resume", &worker.id]).await;
    let trusted = admin_json(
        &app,
        &dir,
        &[
            "worker",
            "trust",
            &worker.id,
            "trusted",
            "--reason",
            "good work",
        ],
    )
    .await;
    assert_eq!(
        (
            trusted["trust_tier"].as_str(),
            trusted["trust_level"].as_i64()
        ),
        (Some("trusted"), Some(2))
    );
    admin_text(&app, &dir, &["worker", "revoke", &worker.id]).await;
    let refused = app.as_worker(&worker, Method::GET, "/v1/work", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    // state and audit
    let state = admin_json(&app, &dir, &["state"]).await;
    assert_eq!(state, app.state().await);
    let text = admin_text(&app, &dir, &["state"]).await;
    assert!(
        text.contains("acme/widgets") && text.contains("[") && text.contains("cancelled"),
        "{text}"
    );
    let audit = admin_json(
        &app,
        &dir,
        &[
            "audit",
            "--type",
            "worker_trust_tier_changed",
            "--since",
            "1h",
        ],
    )
    .await;
    assert_eq!(audit["events"].as_array().unwrap().len(), 1);
    assert_eq!(audit["events"][0]["actor"], "admin");
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn the_admin_token_comes_from_flags_env_or_file_and_errors_say_what_to_do(pool: PgPool) {
    let app = spawn_app(pool).await;
    let dir = Scratch::new();
    // from the config file
    let cfg_dir = dir.0.join("config").join("owp");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("admin.toml"),
        format!("url = \"{}\"\nadmin_token = \"{ADMIN}\"\n", app.base),
    )
    .unwrap();
    let out = cli::run(&dir.0, &["admin", "repo", "add", "acme/a"]).await;
    assert!(cli::ok(&out).contains("repo acme/a created"));
    // a flag beats the file: a wrong token is refused, and the error says where tokens come from
    let out = cli::run(&dir.0, &["admin", "--admin-token", "wrong", "repo", "list"]).await;
    let err = cli::failed(&out);
    assert!(
        err.contains("auth_error") && err.contains("OWP_ADMIN_TOKEN"),
        "{err}"
    );
    // an unreachable server is named as such
    let out = cli::run(
        &dir.0,
        &["admin", "--url", "http://127.0.0.1:9", "repo", "list"],
    )
    .await;
    let err = cli::failed(&out);
    assert!(
        err.contains("cannot reach the server at http://127.0.0.1:9"),
        "{err}"
    );
    // no token anywhere
    let bare = Scratch::new();
    let out = cli::run(&bare.0, &["admin", "--url", &app.base, "state"]).await;
    assert!(cli::failed(&out).contains("no admin token"));
    // a worker CLI without a config says how to make one
    let out = cli::run(&bare.0, &["worker", "status"]).await;
    assert!(cli::failed(&out).contains("owp worker register"));
}

#[sqlx::test]
async fn owp_demo_runs_to_its_summary(_o: PgPoolOptions, conn: PgConnectOptions) {
    let url = database_url(&conn);
    let dir = Scratch::new();
    let out = cli::run(
        &dir.0,
        &[
            "demo",
            "--database-url",
            &url,
            "--tasks",
            "45",
            "--fast",
            "--timeout",
            "50s",
        ],
    )
    .await;
    let text = cli::ok(&out);
    assert!(
        text.contains("done in") && text.contains("by worker kind"),
        "{text}"
    );
    assert!(text.contains("invariant checker: OK"), "{text}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let open: i64 = sqlx::query_scalar(
        "select count(*) from tasks where status not in ('merged', 'completed', 'failed', 'cancelled')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(open, 0, "the demo ends when every task is done");
    assert_invariants(&pool).await;
}

#[tokio::test]
async fn completions_cover_every_command() {
    let dir = Scratch::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = cli::ok(&cli::run(&dir.0, &["completions", shell]).await);
        for word in ["worker", "admin", "import-github", "demo"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
}
