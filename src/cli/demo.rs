//! `owp demo`: the pool at work on this machine in one command. Starts a server on the
//! given PostgreSQL, creates three repos with review budgets (two with area locks) and a
//! few hundred tasks, runs simulated workers of four kinds and a simulated maintainer who
//! merges (or now and then closes) their PRs, shows the budgets filling and draining,
//! and ends with a summary and the invariant checker's verdict.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rand::Rng;
use tokio::sync::watch;

use super::worker::agent::{Simulation, Stop};
use super::worker::SimulatedFleet;
use crate::client::{Client, Credentials};
use crate::config::ServeConfig;
use crate::domain::status::TaskStatus;
use crate::wire::admin::{RepoRequest, TaskRequest};
use crate::wire::tasks::StatusRequest;
use crate::wire::views::TaskListQuery;

#[derive(Args)]
pub struct DemoArgs {
    /// The PostgreSQL database to use (`scripts/demo.sh` creates `owp_demo` locally).
    #[arg(
        long,
        env = "OWP_DEMO_DATABASE_URL",
        default_value = "postgres://owp:owp@127.0.0.1:5432/owp_demo",
        hide_env_values = true
    )]
    pub database_url: String,
    /// How many tasks to create.
    #[arg(long, default_value_t = 300)]
    pub tasks: usize,
    /// Shorter simulated work (for CI): a run takes seconds instead of a minute or two.
    #[arg(long)]
    pub fast: bool,
    /// Give up after this long.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `owp serve`'s settings, parsed from arguments so the demo's server is configured
/// exactly as a real one.
#[derive(Parser)]
struct DemoServe {
    #[command(flatten)]
    serve: ServeConfig,
}

struct RepoPlan {
    name: &'static str,
    budget: i64,
    area_locks: bool,
    skills: &'static [&'static [&'static str]],
    areas: &'static [&'static str],
}

const REPOS: &[RepoPlan] = &[
    RepoPlan {
        name: "web",
        budget: 4,
        area_locks: true,
        skills: &[&["typescript"], &["typescript", "css"]],
        areas: &["checkout", "search", "profile", "nav", "cart", "auth"],
    },
    RepoPlan {
        name: "api",
        budget: 3,
        area_locks: true,
        skills: &[&["rust"], &["rust", "sql"]],
        areas: &["billing", "orders", "users", "export"],
    },
    RepoPlan {
        name: "docs",
        budget: 2,
        area_locks: false,
        skills: &[&[]],
        areas: &[],
    },
];

/// (kind, how many, skills, capacity points, leases at once)
const FLEET: &[(&str, usize, &[&str], i64, i64)] = &[
    ("rustacean", 2, &["rust", "sql"], 5, 2),
    ("frontend", 2, &["typescript", "css"], 4, 2),
    ("generalist", 1, &["rust", "sql", "typescript", "css"], 8, 3),
    ("writer", 1, &[], 3, 1),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let admin_token = crate::auth::generate_token();
    let backoff = if args.fast { "0s" } else { "2s" };
    let cfg = DemoServe::try_parse_from([
        "owp",
        "--database-url",
        &args.database_url,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--admin-token",
        &admin_token,
        "--open-registration",
        "true",
        "--retry-backoff",
        backoff,
        "--log-format",
        "pretty",
    ])
    .context("the demo's server settings")?
    .serve;
    let running = crate::server::start(cfg)
        .await
        .context("starting the demo's server (is PostgreSQL running? scripts/demo.sh starts it)")?;
    let base = format!("http://{}", running.addr);
    println!(
        "OWP Pool demo: server at {base}, database {}",
        redacted(&args.database_url)
    );
    let outcome = drive(&base, &admin_token, &args, started).await;
    // the invariant checker reads the whole database, before the server's pool closes
    let violations = crate::store::invariants::check(&running.app.pool).await;
    running.shutdown().await;
    let summary = outcome?;
    println!("\n{summary}");
    match violations.context("running the invariant checker")? {
        v if v.is_empty() => {
            println!("invariant checker: OK (I1-I7 hold over the whole database and audit log)");
            Ok(())
        }
        v => {
            println!("invariant checker: {} VIOLATIONS", v.len());
            for line in &v {
                println!("  {line}");
            }
            anyhow::bail!("invariants violated")
        }
    }
}

async fn drive(
    base: &str,
    admin_token: &str,
    args: &DemoArgs,
    started: Instant,
) -> anyhow::Result<String> {
    let admin = Client::new(base, Credentials::Admin(admin_token.to_string()))?;
    let run_id: String = uuid::Uuid::now_v7().simple().to_string()[20..].to_string();
    let repos = create_repos(&admin, &run_id).await?;
    create_tasks(&admin, &repos, args.tasks).await?;
    println!(
        "{} repos, {} tasks, {} simulated workers; a maintainer merges PRs as they open",
        repos.len(),
        args.tasks,
        FLEET.iter().map(|f| f.1).sum::<usize>()
    );

    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    let (min, max) = if args.fast {
        (Duration::from_millis(20), Duration::from_millis(150))
    } else {
        (Duration::from_millis(300), Duration::from_millis(2500))
    };
    let anonymous = admin.as_caller(Credentials::None);
    let mut fleets = vec![];
    for (kind, n, skills, capacity, leases) in FLEET {
        let fleet = SimulatedFleet {
            workers: *n,
            name_prefix: format!("demo-{kind}"),
            skills: skills.iter().map(|s| s.to_string()).collect(),
            capacity: *capacity,
            max_concurrent: *leases,
            simulation: Simulation {
                min,
                max,
                fail_rate: 0.08,
                pr_rate: 0.6,
            },
            registration_token: None,
            exit_when_idle: None,
        };
        let (client, stop) = (anonymous.clone(), stop_rx.clone());
        fleets.push((
            *kind,
            tokio::spawn(async move { fleet.run(&client, stop).await }),
        ));
    }
    let review_delay = if args.fast {
        Duration::ZERO
    } else {
        Duration::from_millis(800)
    };
    let maintainer = tokio::spawn(maintain(admin.clone(), repos.clone(), review_delay));

    let watched = watch_progress(&admin, &repos, args.tasks, started + args.timeout).await;
    maintainer.abort();
    let _ = stop_tx.send(Stop::Drain);
    let mut lines = vec![];
    for (kind, fleet) in fleets {
        let tallies = fleet.await??;
        let done: u64 = tallies
            .iter()
            .map(|(_, t)| {
                use std::sync::atomic::Ordering::Relaxed;
                t.completed.load(Relaxed) + t.pr_opened.load(Relaxed)
            })
            .sum();
        lines.push(format!(
            "  {kind:<11} x{}: {done} tasks delivered",
            tallies.len()
        ));
    }
    watched?;
    let counts = final_counts(&admin, &repos).await?;
    let elapsed = started.elapsed();
    Ok(format!(
        "done in {:.1} s: {}\nby worker kind:\n{}",
        elapsed.as_secs_f64(),
        counts,
        lines.join("\n")
    ))
}

async fn create_repos(admin: &Client, run_id: &str) -> anyhow::Result<Vec<String>> {
    let mut names = vec![];
    for plan in REPOS {
        let repo = format!("demo-{run_id}/{}", plan.name);
        admin
            .upsert_repo(&RepoRequest {
                repo: repo.clone(),
                max_open_prs: Some(plan.budget),
                area_locks_enabled: Some(plan.area_locks),
                ..RepoRequest::default()
            })
            .await?;
        names.push(repo);
    }
    Ok(names)
}

async fn create_tasks(admin: &Client, repos: &[String], n: usize) -> anyhow::Result<()> {
    let mut rng = rand::rng();
    let requests: Vec<TaskRequest> = (0..n)
        .map(|i| {
            let (plan, repo) = (&REPOS[i % REPOS.len()], &repos[i % REPOS.len()]);
            let skills = plan.skills[rng.random_range(0..plan.skills.len())];
            let area = (!plan.areas.is_empty() && rng.random_bool(0.7))
                .then(|| plan.areas[rng.random_range(0..plan.areas.len())].to_string());
            TaskRequest {
                repo: repo.clone(),
                title: format!("{} task {}", plan.name, i / REPOS.len() + 1),
                required_skills: Some(skills.iter().map(|s| s.to_string()).collect()),
                estimate_points: Some(rng.random_range(1..=3)),
                priority: Some(rng.random_range(1..=20)),
                area,
                ..TaskRequest::default()
            }
        })
        .collect();
    super::admin::send_tasks(admin, &requests).await?;
    Ok(())
}

/// The maintainer: every open PR is decided after `delay`: merged, now and then closed.
async fn maintain(admin: Client, repos: Vec<String>, delay: Duration) {
    let mut first_seen: std::collections::HashMap<String, Instant> = Default::default();
    loop {
        for repo in &repos {
            let q = TaskListQuery {
                status: Some("pr_opened".into()),
                repo: Some(repo.clone()),
                limit: Some(200),
                ..TaskListQuery::default()
            };
            let Ok(page) = admin.list_tasks(&q).await else {
                continue;
            };
            for t in page.tasks {
                let seen = *first_seen
                    .entry(t.task_id.clone())
                    .or_insert_with(Instant::now);
                if seen.elapsed() < delay {
                    continue;
                }
                let merged = rand::rng().random_bool(0.9);
                let req = StatusRequest::to(if merged { "merged" } else { "closed" });
                if let Err(e) = admin.report(&t.task_id, &req).await {
                    tracing::warn!(task = %t.task_id, error = %e, "the maintainer's decision failed");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Draws the budgets and the overall progress until every task is terminal.
async fn watch_progress(
    admin: &Client,
    repos: &[String],
    total: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    let tty = std::io::stderr().is_terminal();
    let bars = MultiProgress::new();
    let overall = bars.add(ProgressBar::new(total as u64));
    overall.set_style(ProgressStyle::with_template(
        "{prefix:<28} {bar:30} {pos}/{len} done {msg}",
    )?);
    overall.set_prefix("all tasks");
    let mut budget_bars = vec![];
    for r in repos {
        let b = bars.add(ProgressBar::new(1));
        b.set_style(ProgressStyle::with_template(
            "{prefix:<28} {bar:30} {pos}/{len} review slots {msg}",
        )?);
        b.set_prefix(r.clone());
        budget_bars.push(b);
    }
    let mut last_line = Instant::now();
    loop {
        let state = admin.state().await?;
        let mut open_total = 0;
        for (bar, repo) in budget_bars.iter().zip(repos) {
            if let Some(r) = state.repositories.iter().find(|s| &s.repo == repo) {
                bar.set_length(r.max_open_prs.max(1) as u64);
                bar.set_position(r.current_open_prs as u64);
                open_total += r.current_open_prs;
            }
        }
        let (done, by_status) = progress(admin, repos).await?;
        overall.set_position(done as u64);
        overall.set_message(by_status.clone());
        if !tty && last_line.elapsed() >= Duration::from_secs(2) {
            // logs and CI: a line now and then instead of bars
            println!(
                "progress: {done}/{total} done, {open_total} review slots in use; {by_status}"
            );
            last_line = Instant::now();
        }
        if done >= total {
            overall.finish();
            for b in &budget_bars {
                b.finish();
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            anyhow::bail!(
                "the demo did not finish in time: {done}/{total} tasks done ({by_status})"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Terminal tasks of these repos, and the open ones by status.
async fn progress(admin: &Client, repos: &[String]) -> anyhow::Result<(usize, String)> {
    let counts = count_by_status(admin, repos).await?;
    let done = counts
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, n)| n)
        .sum();
    let open: Vec<String> = counts
        .iter()
        .filter(|(s, n)| !s.is_terminal() && *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    Ok((done, open.join(", ")))
}

async fn count_by_status(
    admin: &Client,
    repos: &[String],
) -> anyhow::Result<Vec<(TaskStatus, usize)>> {
    let mut counts: std::collections::BTreeMap<TaskStatus, usize> = Default::default();
    for repo in repos {
        let mut q = TaskListQuery {
            repo: Some(repo.clone()),
            limit: Some(200),
            ..TaskListQuery::default()
        };
        loop {
            let page = admin.list_tasks(&q).await?;
            for t in &page.tasks {
                *counts.entry(t.status).or_default() += 1;
            }
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => break,
            }
        }
    }
    Ok(counts.into_iter().collect())
}

async fn final_counts(admin: &Client, repos: &[String]) -> anyhow::Result<String> {
    let counts = count_by_status(admin, repos).await?;
    Ok(counts
        .iter()
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect::<Vec<_>>()
        .join(", "))
}

/// The URL without its password.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
