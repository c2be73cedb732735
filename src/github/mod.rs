//! GitHub's REST API, as far as the pool uses it: open issues with a label (paged, for
//! imports and sync), a pull request's state (sync), and comments and labels on an issue
//! (write-back). The base URL is configurable (GitHub Enterprise, and a local fake in
//! tests); rate limits come back as [`GhError::RateLimited`] with how long to wait.
//! `signature` verifies webhook deliveries.

pub mod signature;

use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, LINK, RETRY_AFTER};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum GhError {
    #[error("GitHub's rate limit: try again in {} s", .wait.as_secs())]
    RateLimited { wait: Duration },
    #[error("GitHub answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("cannot reach GitHub: {0}")]
    Transport(String),
    #[error("GitHub's answer cannot be read: {0}")]
    Decode(String),
    /// Not a GitHub `owner/name`: never put into an API path.
    #[error("{0:?} is not a GitHub repository name (owner/name)")]
    BadRepo(String),
}

impl GhError {
    /// Worth trying again later (network, rate limit, GitHub's own 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            GhError::RateLimited { .. } | GhError::Transport(_) => true,
            GhError::Status { status, .. } => *status >= 500,
            GhError::Decode(_) | GhError::BadRepo(_) => false,
        }
    }
}

pub type GhResult<T> = Result<T, GhError>;

#[derive(Clone)]
pub struct GitHub {
    http: reqwest::Client,
    api: String,
    token: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhIssue {
    pub number: u64,
    pub title: String,
    pub body: Option<String>,
    pub html_url: String,
    #[serde(default)]
    pub labels: Vec<GhLabel>,
    /// Present on pull requests, which the issues API lists too.
    pub pull_request: Option<serde_json::Value>,
}

/// A label as the REST API (`{name}`) or a webhook's issue payload sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GhLabel {
    Named { name: String },
    Plain(String),
}

impl GhLabel {
    pub fn name(&self) -> &str {
        match self {
            GhLabel::Named { name } | GhLabel::Plain(name) => name,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct GhPull {
    /// open or closed
    pub state: String,
    #[serde(default)]
    pub merged: bool,
    pub html_url: String,
    pub user: Option<GhUser>,
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A GitHub account as the API names it.
#[derive(Debug, Clone, Deserialize)]
pub struct GhUser {
    pub login: String,
}

#[derive(Debug, Clone, Deserialize)]
struct GhComment {
    body: Option<String>,
}

pub const PUBLIC_API: &str = "https://api.github.com";

impl GhIssue {
    /// The task this issue becomes in the pool repo `pool_repo`, by the rule of
    /// `domain::github_issue` (`gh_repo` is the issue's `owner/name`).
    pub fn task_request(&self, gh_repo: &str, pool_repo: &str) -> crate::wire::admin::TaskRequest {
        use crate::domain::github_issue::{to_task, Issue};
        let t = to_task(&Issue {
            repo: gh_repo,
            number: self.number,
            title: &self.title,
            body: self.body.as_deref(),
            html_url: &self.html_url,
            labels: self.labels.iter().map(GhLabel::name).collect(),
        });
        crate::wire::admin::TaskRequest {
            repo: pool_repo.to_string(),
            title: t.title,
            description: Some(t.description),
            required_skills: Some(t.required_skills),
            estimate_points: t.estimate_points,
            priority: t.priority,
            area: t.area,
            tier: t.tier,
            external_id: Some(t.external_id),
            ..Default::default()
        }
    }
}

impl GitHub {
    pub fn new(api: &str, token: Option<&str>) -> Self {
        let http = reqwest::Client::builder()
            .user_agent(concat!("owp/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .expect("a TLS-capable HTTP client");
        Self {
            http,
            api: api.trim_end_matches('/').to_string(),
            token: token.map(str::to_string),
        }
    }

    fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method, url)
            .header(ACCEPT, "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28");
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    fn url(&self, path: &str) -> GhResult<reqwest::Url> {
        reqwest::Url::parse(&format!("{}{path}", self.api))
            .map_err(|e| GhError::Transport(format!("bad GitHub API URL: {e}")))
    }

    /// Sends; a 2xx answer's headers and body, or the error it is.
    async fn send(&self, req: reqwest::RequestBuilder) -> GhResult<(HeaderMap, String)> {
        let resp = req
            .send()
            .await
            .map_err(|e| GhError::Transport(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        if let Some(wait) = rate_limit_wait(status, &headers) {
            return Err(GhError::RateLimited { wait });
        }
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(GhError::Status { status, message });
        }
        Ok((headers, body))
    }

    fn decode<T: serde::de::DeserializeOwned>(body: &str) -> GhResult<T> {
        serde_json::from_str(body).map_err(|e| GhError::Decode(e.to_string()))
    }

    /// Every open issue of `repo` (`owner/name`) with `label`, page by page (pull requests
    /// included: the caller skips them). A rate limit is waited out when it resets within
    /// `max_wait`, with `on_wait` told.
    pub async fn open_issues(
        &self,
        repo: &str,
        label: &str,
        max_wait: Duration,
        mut on_wait: impl FnMut(Duration),
    ) -> GhResult<Vec<GhIssue>> {
        let repo = repo_path(repo)?;
        let mut url = self.url(&format!("/repos/{repo}/issues"))?;
        url.query_pairs_mut()
            .append_pair("state", "open")
            .append_pair("labels", label)
            .append_pair("per_page", "100");
        let mut next = Some(url);
        let mut issues = vec![];
        while let Some(url) = next.take() {
            match self
                .send(self.request(reqwest::Method::GET, url.clone()))
                .await
            {
                Ok((headers, body)) => {
                    issues.extend(Self::decode::<Vec<GhIssue>>(&body)?);
                    next = next_link(&headers);
                }
                Err(GhError::RateLimited { wait }) if wait <= max_wait => {
                    on_wait(wait);
                    tokio::time::sleep(wait).await;
                    next = Some(url);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(issues)
    }

    pub async fn pull(&self, repo: &str, number: u64) -> GhResult<GhPull> {
        let repo = repo_path(repo)?;
        let url = self.url(&format!("/repos/{repo}/pulls/{number}"))?;
        let (_, body) = self.send(self.request(reqwest::Method::GET, url)).await?;
        Self::decode(&body)
    }

    pub async fn comment(&self, repo: &str, number: u64, body: &str) -> GhResult<()> {
        let repo = repo_path(repo)?;
        let url = self.url(&format!("/repos/{repo}/issues/{number}/comments"))?;
        let req = self
            .request(reqwest::Method::POST, url)
            .json(&serde_json::json!({ "body": body }));
        self.send(req).await.map(|_| ())
    }

    /// Whether a comment of the issue's (the newest 100) contains `marker`: a comment whose
    /// delivery had no clear answer may have landed, and must not land twice.
    pub async fn has_comment_with(&self, repo: &str, number: u64, marker: &str) -> GhResult<bool> {
        let repo = repo_path(repo)?;
        let mut url = self.url(&format!("/repos/{repo}/issues/{number}/comments"))?;
        url.query_pairs_mut()
            .append_pair("per_page", "100")
            .append_pair("sort", "created")
            .append_pair("direction", "desc");
        let (_, body) = self.send(self.request(reqwest::Method::GET, url)).await?;
        let comments: Vec<GhComment> = Self::decode(&body)?;
        Ok(comments
            .iter()
            .any(|c| c.body.as_deref().is_some_and(|b| b.contains(marker))))
    }

    pub async fn add_labels(&self, repo: &str, number: u64, labels: &[String]) -> GhResult<()> {
        let repo = repo_path(repo)?;
        let url = self.url(&format!("/repos/{repo}/issues/{number}/labels"))?;
        let req = self
            .request(reqwest::Method::POST, url)
            .json(&serde_json::json!({ "labels": labels }));
        self.send(req).await.map(|_| ())
    }

    /// Removes a label; one the issue does not have is already removed.
    pub async fn remove_label(&self, repo: &str, number: u64, label: &str) -> GhResult<()> {
        let repo = repo_path(repo)?;
        let mut url = self.url(&format!("/repos/{repo}/issues/{number}/labels"))?;
        url.path_segments_mut()
            .map_err(|_| GhError::Transport("bad GitHub API URL".into()))?
            .push(label);
        match self.send(self.request(reqwest::Method::DELETE, url)).await {
            Err(GhError::Status { status: 404, .. }) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

/// `owner/name` as GitHub spells names (letters, digits, `-`, `_`, `.`; not `.` or `..`),
/// checked before it goes into an API path: a name from a task or an issue key must not
/// reach another endpoint through `..`, `?` or `#`.
pub fn repo_path(repo: &str) -> GhResult<&str> {
    use crate::domain::pr_link::is_name;
    match repo.split_once('/') {
        Some((owner, name)) if is_name(owner) && is_name(name) => Ok(repo),
        _ => Err(GhError::BadRepo(repo.chars().take(200).collect())),
    }
}

/// How long to wait before asking again, when this answer is GitHub's rate limit
/// (`retry-after`, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`).
pub fn rate_limit_wait(status: u16, headers: &HeaderMap) -> Option<Duration> {
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
pub fn next_link(headers: &HeaderMap) -> Option<reqwest::Url> {
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
    fn only_owner_name_reaches_an_api_path() {
        assert_eq!(repo_path("acme/widgets.rs").unwrap(), "acme/widgets.rs");
        for bad in [
            "acme", "acme/..", "../x", "a/b/c", "a/b?x=1", "a/b#c", "a/ b", "/b", "a/",
        ] {
            assert!(repo_path(bad).is_err(), "{bad}");
        }
    }

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
