//! `owp worker` as a contributor runs it: the real binary against the real server, a real
//! shell command per lease.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::cli::{self, Scratch};
use crate::support::*;

/// Registers a worker through the CLI; its config path.
async fn register(app: &TestApp, dir: &Scratch, skills: &str, max: &str) -> String {
    let config = dir.path("worker.toml");
    let config = config.to_str().unwrap().to_string();
    let out = cli::run(
        &dir.0,
        &[
            "worker",
            "register",
            "--url",
            &app.base,
            "--name",
            "alice",
            "--github-handle",
            "alice",
            "--skills",
            skills,
            "--capacity",
            "10",
            "--max-concurrent",
            max,
            "--config",
            &config,
        ],
    )
    .await;
    let text = cli::ok(&out);
    assert!(text.contains("registered worker w_"), "{text}");
    config
}

fn config_of(path: &str) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[sqlx::test]
async fn register_keeps_a_private_config_and_status_lists_the_leases(pool: PgPool) {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app(pool).await;
    let dir = Scratch::new();
    let config = register(&app, &dir, "rust,sql", "2").await;
    let mode = std::fs::metadata(&config).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the token's file is the owner's alone");
    let cfg = config_of(&config);
    let worker_id = cfg["worker_id"].as_str().unwrap().to_string();
    let skills: Vec<String> = sqlx::query_scalar("select skills from workers where id = $1")
        .bind(&worker_id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(skills, vec!["rust", "sql"]);

    // a second register would lose the token: refused unless --force
    let again = cli::run(
        &dir.0,
        &[
            "worker", "register", "--url", &app.base, "--name", "bob", "--config", &config,
        ],
    )
    .await;
    assert!(cli::failed(&again).contains("--force"));
    assert_eq!(
        config_of(&config)["worker_id"].as_str(),
        Some(worker_id.as_str())
    );

    app.create_repo("acme/widgets", 5, false).await;
    let task = app
        .create_task(
            json!({"repo": "acme/widgets", "title": "Fix the parser", "required_skills": ["rust"]}),
        )
        .await;
    let me = Worker {
        id: worker_id.clone(),
        token: cfg["token"].as_str().unwrap().into(),
    };
    assert_eq!(app.poll(&me).await.len(), 1);
    let out = cli::run(&dir.0, &["worker", "status", "--config", &config, "--json"]).await;
    let status: Value = serde_json::from_str(&cli::ok(&out)).unwrap();
    assert_eq!(status["worker_id"], worker_id.as_str());
    assert_eq!(status["leases"][0]["task_id"], task.as_str());
    let table = cli::ok(&cli::run(&dir.0, &["worker", "status", "--config", &config]).await);
    assert!(
        table.contains(&task) && table.contains("Fix the parser"),
        "{table}"
    );
}

#[sqlx::test]
async fn run_turns_each_lease_into_a_command_and_reports_its_outcome(pool: PgPool) {
    let app = spawn_app(pool).await;
    let dir = Scratch::new();
    let config = register(&app, &dir, "rust", "2").await;
    app.create_repo("acme/widgets", 10, false).await;
    let pr = app
        .create_task(json!({"repo": "acme/widgets", "title": "opens a pr", "required_skills": ["rust"], "area": "parser"}))
        .await;
    let plain = app
        .create_task(
            json!({"repo": "acme/widgets", "title": "plain", "description": "no PR needed"}),
        )
        .await;
    let fails = app
        .create_task(json!({"repo": "acme/widgets", "title": "fails", "max_attempts": 1}))
        .await;
    let out_dir = dir.0.display().to_string();
    let script = format!(
        r#"echo "$OWP_TASK_ID|$OWP_LEASE_ID|$OWP_REPO|$OWP_TITLE|$OWP_SKILLS|$OWP_AREA|$OWP_ESTIMATE_POINTS" > {out_dir}/$OWP_TASK_ID.env
cat > {out_dir}/$OWP_TASK_ID.json
case "$OWP_TITLE" in
  "opens a pr") echo "working"; echo "OWP_PR_URL=https://github.com/evil/x/pull/1"; echo "https://github.com/acme/widgets/pull/42" > "$OWP_PR_URL_FILE"; env > {out_dir}/$OWP_TASK_ID.fullenv ;;
  fails) echo "compiling"; echo "error: it broke" >&2; exit 3 ;;
  *) echo "done" ;;
esac"#
    );
    // the worker's own environment holds the pool's tokens; its commands must not see them
    let out = cli::owp(
        &dir.0,
        &[
            "worker",
            "run",
            "--config",
            &config,
            "--exec",
            &script,
            "--exit-when-idle",
            "2s",
        ],
    )
    .env("OWP_ADMIN_TOKEN", "admin-secret-in-the-env")
    .env("OWP_REGISTRATION_TOKEN", "registration-secret-in-the-env")
    .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("owp finished within 60 s")
        .expect("owp runs");
    let summary = cli::ok(&out);
    let seen_env = std::fs::read_to_string(dir.path(&format!("{pr}.fullenv"))).unwrap();
    assert!(!seen_env.contains("secret-in-the-env"), "{seen_env}");
    assert!(seen_env.contains("OWP_PR_URL_FILE="));
    assert!(
        summary.contains("1 completed, 1 PRs opened, 1 failed"),
        "{summary}"
    );

    let detail = |id: String| {
        let app = &app;
        async move {
            app.admin(Method::GET, &format!("/v1/tasks/{id}"), None)
                .await
                .expect(StatusCode::OK)
        }
    };
    let d = detail(pr.clone()).await;
    assert_eq!(d["status"], "pr_opened");
    assert_eq!(d["pr_url"], "https://github.com/acme/widgets/pull/42");
    assert_eq!(detail(plain.clone()).await["status"], "completed");
    let f = detail(fails.clone()).await;
    assert_eq!(f["status"], "failed");
    let message = f["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["details"]["data"]["message"].as_str())
        .expect("the failure carries a message")
        .to_string();
    assert!(
        message.contains("exit code 3") && message.contains("error: it broke"),
        "{message}"
    );
    // every report went through in_progress first
    assert!(audit_kinds(&app.pool, &plain).await.len() >= 4);

    // the command saw the task in its environment and on stdin
    let env = std::fs::read_to_string(dir.path(&format!("{pr}.env"))).unwrap();
    let fields: Vec<&str> = env.trim().split('|').collect();
    assert_eq!(fields[0], pr);
    assert!(fields[1].starts_with("l_"));
    assert_eq!(
        &fields[2..],
        ["acme/widgets", "opens a pr", "rust", "parser", "1"]
    );
    let stdin: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path(&format!("{plain}.json"))).unwrap())
            .unwrap();
    assert_eq!(stdin["task_id"], plain.as_str());
    assert_eq!(stdin["description"], "no PR needed");
    assert_invariants(&app.pool).await;
}

/// Reads a pid a command wrote, once it is there.
async fn pid_in(path: std::path::PathBuf) -> i32 {
    eventually_some("the command wrote its pid", Duration::from_secs(20), || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        async move { text.trim().parse::<i32>().ok() }
    })
    .await
}

#[sqlx::test]
async fn a_lost_lease_kills_the_command_and_everything_it_started(pool: PgPool) {
    let app = spawn_app(pool).await;
    let dir = Scratch::new();
    let config = register(&app, &dir, "rust", "1").await;
    app.create_repo("acme/widgets", 10, false).await;
    let task = app
        .create_task(json!({"repo": "acme/widgets", "title": "takes forever"}))
        .await;
    // the shell starts a grandchild and waits: both must go when the lease does
    let script = format!(
        "sleep 60 & echo $! > {dir}/child; echo $$ > {dir}/shell; wait",
        dir = dir.0.display()
    );
    let mut worker = cli::spawn(
        &dir.0,
        "worker",
        &[
            "worker",
            "run",
            "--config",
            &config,
            "--exec",
            &script,
            "--renew-every",
            "200ms",
        ],
    );
    let shell = pid_in(dir.path("shell")).await;
    let child = pid_in(dir.path("child")).await;
    assert!(cli::alive(shell) && cli::alive(child));
    // the maintainer cancels the task: the worker's next renewal hears lease_lost
    app.admin(Method::POST, &format!("/v1/tasks/{task}/cancel"), None)
        .await
        .expect(StatusCode::OK);
    eventually(
        "the command and its child were killed",
        Duration::from_secs(15),
        || async { !cli::alive(shell) && !cli::alive(child) },
    )
    .await;
    cli::signal(&worker, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(20), worker.wait())
        .await
        .expect("the worker stops on SIGTERM")
        .unwrap();
    assert!(status.success());
    let out = std::fs::read_to_string(dir.path("worker.out")).unwrap();
    assert!(out.contains("1 lost"), "{out}");
    assert_eq!(app.task_row(&task).await.0, "cancelled");
}

#[sqlx::test]
async fn sigterm_lets_running_work_finish_then_releases_the_rest(pool: PgPool) {
    let app = spawn_app(pool).await;
    let dir = Scratch::new();
    let config = register(&app, &dir, "rust", "2").await;
    app.create_repo("acme/widgets", 10, false).await;
    let quick = app
        .create_task(json!({"repo": "acme/widgets", "title": "quick", "priority": 20}))
        .await;
    let slow = app
        .create_task(json!({"repo": "acme/widgets", "title": "slow"}))
        .await;
    let script = format!(
        r#"echo $$ > {dir}/$OWP_TITLE.pid
if [ "$OWP_TITLE" = quick ]; then sleep 1; else sleep 60; fi"#,
        dir = dir.0.display()
    );
    let mut worker = cli::spawn(
        &dir.0,
        "worker",
        &[
            "worker", "run", "--config", &config, "--exec", &script, "--grace", "3s",
        ],
    );
    let _ = pid_in(dir.path("quick.pid")).await;
    let slow_pid = pid_in(dir.path("slow.pid")).await;
    cli::signal(&worker, libc::SIGTERM);
    let status = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stops after its grace period")
        .unwrap();
    assert!(status.success());
    // the quick one finished within the grace period; the slow one was ended and released
    assert_eq!(app.task_row(&quick).await.0, "completed");
    let (status, attempt, holder) = app.task_row(&slow).await;
    assert_eq!((status.as_str(), attempt, holder), ("ready", 0, None));
    assert!(
        !cli::alive(slow_pid),
        "the released task's command was ended"
    );
    let kinds = audit_kinds(&app.pool, &slow).await;
    assert!(kinds.iter().any(|k| k == "task_requeued"), "{kinds:?}");
    let out = std::fs::read_to_string(dir.path("worker.out")).unwrap();
    assert!(
        out.contains("1 completed") && out.contains("1 released"),
        "{out}"
    );
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn update_changes_the_workers_settings_on_the_pool_and_in_its_config(pool: PgPool) {
    let app = spawn_app(pool).await;
    let dir = Scratch::new();
    let config = register(&app, &dir, "rust", "2").await;
    let out = cli::run(
        &dir.0,
        &[
            "worker",
            "update",
            "--skills",
            "go,Rust",
            "--max-concurrent",
            "4",
            "--repos",
            "acme/a,acme/b",
            "--config",
            &config,
            "--json",
        ],
    )
    .await;
    let now: Value = serde_json::from_str(&cli::ok(&out)).unwrap();
    assert_eq!(now["skills"], json!(["go", "rust"]));
    assert_eq!(now["repos"], json!(["acme/a", "acme/b"]));
    assert_eq!(now["capacity_points"], 10, "not given: unchanged");
    assert_eq!(
        config_of(&config)["max_concurrent_tasks"].as_integer(),
        Some(4)
    );
    // "" takes work from any repository again
    let out = cli::run(
        &dir.0,
        &["worker", "update", "--repos", "", "--config", &config],
    )
    .await;
    assert!(cli::ok(&out).contains("repos any"));
    let repos: Option<Vec<String>> = sqlx::query_scalar("select repos from workers")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(repos, None);
    // the pool's refusal reaches the user, naming the field
    let out = cli::run(
        &dir.0,
        &["worker", "update", "--capacity", "0", "--config", &config],
    )
    .await;
    assert!(cli::failed(&out).contains("capacity_points"));
}
