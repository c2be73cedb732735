//! `owp admin import-github OWNER/REPO --label L`: a task per open issue with the label,
//! by the rule of `domain::github_issue` (labels such as `skill:rust` carry the fields).
//! Pages through the issues API (`Link: rel="next"`), waits out GitHub's rate limit
//! (`x-ratelimit-reset`, `retry-after`) up to a bound, and is idempotent: an issue is one
//! task (`external_id` `github:OWNER/REPO#N`) however often it is imported.

use std::time::Duration;

use clap::Args;

use super::output;
use crate::client::Client;
use crate::github::{GhError, GhIssue, GitHub};
use crate::wire::admin::TaskRequest;

#[derive(Args)]
pub struct GithubArgs {
    /// The GitHub repository, OWNER/REPO.
    pub repo: String,
    /// Import open issues that carry this label.
    #[arg(long)]
    pub label: String,
    /// The pool's repo to create the tasks in [default: OWNER/REPO].
    #[arg(long)]
    pub pool_repo: Option<String>,
    /// GitHub's API base (GitHub Enterprise: https://HOST/api/v3).
    #[arg(
        long,
        env = "OWP_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api: String,
    /// A token that can read the repository's issues (public repos need none, but get a
    /// far smaller rate limit without one).
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,
    /// Longest wait for GitHub's rate limit to reset before giving up.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub max_rate_limit_wait: Duration,
    /// List what would be imported; create nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(client: &Client, args: GithubArgs, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.repo.split('/').filter(|p| !p.is_empty()).count() == 2,
        "{:?} is not OWNER/REPO",
        args.repo
    );
    let pool_repo = args.pool_repo.clone().unwrap_or_else(|| args.repo.clone());
    let known = client.list_repos().await?;
    if !known.repositories.iter().any(|r| r.repo == pool_repo) {
        anyhow::bail!(
            "repo {pool_repo} is not in the pool: `owp admin repo add {pool_repo}` first"
        );
    }
    let issues = fetch_issues(&args).await?;
    let pulls = issues.iter().filter(|i| i.pull_request.is_some()).count();
    let requests: Vec<TaskRequest> = issues
        .iter()
        .filter(|i| i.pull_request.is_none())
        .map(|i| i.task_request(&args.repo, &pool_repo))
        .collect();
    if args.dry_run {
        if json {
            return output::json(&requests);
        }
        for r in &requests {
            println!("{}  {}", r.external_id.as_deref().unwrap_or("-"), r.title);
        }
        println!(
            "{} issues would be imported; nothing was sent (--dry-run)",
            requests.len()
        );
        return Ok(());
    }
    let (created, ids) = super::import::send(client, &requests).await?;
    if json {
        return output::json(&serde_json::json!({
            "issues": requests.len(), "created": created, "existing": requests.len() - created,
            "pull_requests_skipped": pulls, "task_ids": ids,
        }));
    }
    println!(
        "{} open issues labelled {:?} in {}: {created} tasks created, {} already there ({pulls} pull requests skipped)",
        requests.len(),
        args.label,
        args.repo,
        requests.len() - created
    );
    Ok(())
}

/// Every open issue with the label, waiting out GitHub's rate limit up to the bound.
async fn fetch_issues(args: &GithubArgs) -> anyhow::Result<Vec<GhIssue>> {
    let gh = GitHub::new(&args.github_api, args.github_token.as_deref());
    gh.open_issues(&args.repo, &args.label, args.max_rate_limit_wait, |wait| {
        eprintln!("GitHub rate limit reached: waiting {} s", wait.as_secs());
    })
    .await
    .map_err(|e| match e {
        GhError::RateLimited { wait } => anyhow::anyhow!(
            "GitHub's rate limit resets in {} s, beyond --max-rate-limit-wait; give a token (GITHUB_TOKEN) or try later",
            wait.as_secs()
        ),
        GhError::Status { status: 401, .. } => {
            anyhow::anyhow!("GitHub refused the token (401): check GITHUB_TOKEN / --github-token")
        }
        GhError::Status { status: 404, .. } => anyhow::anyhow!(
            "GitHub has no repository {} (404), or the token cannot see it",
            args.repo
        ),
        e => anyhow::anyhow!("{e} (at {})", args.github_api),
    })
}
