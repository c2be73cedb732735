//! `owp admin import-github OWNER/REPO --label L`: a task per open issue with the label,
//! by the rule of `domain::github_issue` (labels such as `skill:rust` carry the fields).
//! Pages through the issues API (`Link: rel="next"`), waits out GitHub's rate limit
//! (`x-ratelimit-reset`, `retry-after`) up to a bound, and is idempotent: an issue is one
//! task (`external_id` `github:OWNER/REPO#N`) however often it is imported.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, LINK, RETRY_AFTER};
use serde::Deserialize;

use super::output;
use crate::client::Client;
use crate::domain::github_issue::{self, Issue};
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

#[derive(Deserialize)]
struct GhIssue {
    number: u64,
    title: String,
    body: Option<String>,
    html_url: String,
    #[serde(default)]
    labels: Vec<GhLabel>,
    /// Present on pull requests, which the issues API lists too.
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GhLabel {
    Named { name: String },
    Plain(String),
}

impl GhLabel {
    fn name(&self) -> &str {
        match self {
            GhLabel::Named { name } | GhLabel::Plain(name) => name,
        }
    }
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
        .map(|i| to_request(&args.repo, &pool_repo, i))
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

fn to_request(gh_repo: &str, pool_repo: &str, i: &GhIssue) -> TaskRequest {
    let t = github_issue::to_task(&Issue {
        repo: gh_repo,
        number: i.number,
        title: &i.title,
        body: i.body.as_deref(),
        html_url: &i.html_url,
        labels: i.labels.iter().map(GhLabel::name).collect(),
    });
    TaskRequest {
        repo: pool_repo.to_string(),
        title: t.title,
        description: Some(t.description),
        required_skills: Some(t.required_skills),
        estimate_points: t.estimate_points,
        priority: t.priority,
        area: t.area,
        tier: t.tier,
        external_id: Some(t.external_id),
        ..TaskRequest::default()
    }
}

/// Every open issue with the label, page by page.
async fn fetch_issues(args: &GithubArgs) -> anyhow::Result<Vec<GhIssue>> {
    let http = reqwest::Client::builder()
        .user_agent(concat!("owp/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut url = reqwest::Url::parse(&format!(
        "{}/repos/{}/issues",
        args.github_api.trim_end_matches('/'),
        args.repo
    ))
    .context("--github-api is not a URL")?;
    url.query_pairs_mut()
        .append_pair("state", "open")
        .append_pair("labels", &args.label)
        .append_pair("per_page", "100");
    let mut next = Some(url);
    let mut issues = vec![];
    while let Some(url) = next.take() {
        let mut req = http
            .get(url.clone())
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        if let Some(t) = &args.github_token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let resp = req.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot reach GitHub at {}: {}",
                args.github_api,
                e.without_url()
            )
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        if let Some(wait) = rate_limit_wait(status.as_u16(), &headers) {
            anyhow::ensure!(
                wait <= args.max_rate_limit_wait,
                "GitHub's rate limit resets in {} s, beyond --max-rate-limit-wait; give a token (GITHUB_TOKEN) or try later",
                wait.as_secs()
            );
            eprintln!("GitHub rate limit reached: waiting {} s", wait.as_secs());
            tokio::time::sleep(wait).await;
            next = Some(url);
            continue;
        }
        let body = resp.text().await.unwrap_or_default();
        match status.as_u16() {
            200 => {}
            401 => {
                anyhow::bail!("GitHub refused the token (401): check GITHUB_TOKEN / --github-token")
            }
            404 => anyhow::bail!(
                "GitHub has no repository {} (404), or the token cannot see it",
                args.repo
            ),
            s => anyhow::bail!(
                "GitHub answered {s}: {}",
                body.chars().take(300).collect::<String>()
            ),
        }
        let page: Vec<GhIssue> =
            serde_json::from_str(&body).context("GitHub's answer is not a list of issues")?;
        issues.extend(page);
        next = next_link(&headers);
    }
    Ok(issues)
}

/// How long to wait before asking again, when this answer is GitHub's rate limit.
fn rate_limit_wait(status: u16, headers: &HeaderMap) -> Option<Duration> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header(RETRY_AFTER.as_str()).and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let reset = header("x-ratelimit-reset")?.parse::<i64>().ok()?;
        let secs = (reset - chrono::Utc::now().timestamp()).max(0) as u64;
        // a second more: GitHub's clock and ours differ a little
        return Some(Duration::from_secs(secs + 1));
    }
    None
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(headers: &HeaderMap) -> Option<reqwest::Url> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| url.trim().trim_start_matches('<').trim_end_matches('>'))
            .and_then(|u| reqwest::Url::parse(u).ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            r#"<https://api.github.com/x?page=1>; rel="prev", <https://api.github.com/x?page=3>; rel="next", <https://api.github.com/x?page=9>; rel="last""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            next_link(&h).unwrap().as_str(),
            "https://api.github.com/x?page=3"
        );
        h.insert(
            LINK,
            r#"<https://api.github.com/x?page=1>; rel="prev""#.parse().unwrap(),
        );
        assert!(next_link(&h).is_none());
    }

    #[test]
    fn rate_limits_are_read_from_either_header() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        assert_eq!(rate_limit_wait(429, &h), Some(Duration::from_secs(7)));
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let reset = chrono::Utc::now().timestamp() + 5;
        h.insert("x-ratelimit-reset", reset.to_string().parse().unwrap());
        let w = rate_limit_wait(403, &h).unwrap();
        assert!(
            w >= Duration::from_secs(5) && w <= Duration::from_secs(7),
            "{w:?}"
        );
        // a 403 that is not a rate limit is a refusal, not a wait
        assert_eq!(rate_limit_wait(403, &HeaderMap::new()), None);
    }
}
