//! GitHub: webhook secrets, the token and API for write-back and sync, the import label.
//! Flattened into `Settings`.

use std::time::Duration;

use clap::Args;

use super::{duration_in, in_range, Secret, HOUR, MS};

#[derive(Clone, Debug, Args)]
pub struct GithubSettings {
    /// Secret(s) GitHub signs webhook deliveries with, comma-separated (old and new
    /// during a rotation). Unset: POST /webhooks/github answers 404.
    #[arg(
        long,
        env = "OWP_GITHUB_WEBHOOK_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub github_webhook_secret: Vec<Secret>,

    /// A GitHub token for write-back (comments and labels on issues: `issues: write`) and
    /// for sync (reading pull requests and issues).
    #[arg(long, env = "OWP_GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<Secret>,

    /// GitHub's API base: the public API, or https://HOST/api/v3 for GitHub Enterprise.
    #[arg(
        long,
        env = "OWP_GITHUB_API_URL",
        default_value = "https://api.github.com"
    )]
    pub github_api_url: String,

    /// Issues with this label are imported as tasks (webhook `issues` `labeled`, sync), as
    /// are those with v0.1's `pool:ready`.
    #[arg(long, env = "OWP_GITHUB_IMPORT_LABEL", default_value = "owp")]
    pub github_import_label: String,

    /// Largest webhook delivery accepted (GitHub's events the pool reads are far smaller).
    #[arg(long, env = "OWP_WEBHOOK_BODY_LIMIT", default_value = "1MiB", value_parser = super::parse_size)]
    pub webhook_body_limit: usize,

    /// How often the leader delivers pending write-back to GitHub.
    #[arg(long, env = "OWP_GITHUB_OUTBOX_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub github_outbox_interval: Duration,

    /// A lease announced on an issue this soon after the previous one moves the labels
    /// but posts no comment: a claim/release loop cannot make the bot spam an issue.
    #[arg(long, env = "OWP_GITHUB_COMMENT_COOLDOWN", default_value = "1h", value_parser = humantime::parse_duration)]
    pub github_comment_cooldown: Duration,

    /// Tries of one write-back before it is given up (and shown as failed).
    #[arg(long, env = "OWP_GITHUB_OUTBOX_MAX_ATTEMPTS", default_value_t = 10)]
    pub github_outbox_max_attempts: i32,
}

impl GithubSettings {
    /// The web host PR links of GitHub repositories are on (`github.com`, or an
    /// Enterprise server's host).
    pub fn web_host(&self) -> String {
        github_host_for_api(&self.github_api_url)
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.github_api_url.starts_with("https://")
            || self.github_api_url.starts_with("http://"))
        {
            return Err(format!(
                "OWP_GITHUB_API_URL: {:?} is not an http(s) URL",
                self.github_api_url
            ));
        }
        if self.github_import_label.trim().is_empty() || self.github_import_label.len() > 50 {
            return Err("OWP_GITHUB_IMPORT_LABEL: 1-50 characters".into());
        }
        in_range(
            "OWP_WEBHOOK_BODY_LIMIT",
            self.webhook_body_limit,
            1024,
            64 << 20,
        )?;
        duration_in(
            "OWP_GITHUB_OUTBOX_INTERVAL",
            self.github_outbox_interval,
            10 * MS,
            HOUR,
        )?;
        in_range(
            "OWP_GITHUB_OUTBOX_MAX_ATTEMPTS",
            usize::try_from(self.github_outbox_max_attempts).unwrap_or(0),
            1,
            100,
        )?;
        Ok(())
    }

    pub fn webhook_secrets(&self) -> impl Iterator<Item = &str> {
        self.github_webhook_secret
            .iter()
            .map(Secret::expose)
            .filter(|s| !s.is_empty())
    }
}

/// The GitHub web host for an API base: `api.github.com` -> `github.com`,
/// `https://HOST/api/v3` (Enterprise) -> HOST; anything else (a test double) -> github.com.
pub fn github_host_for_api(api: &str) -> String {
    match url::Url::parse(api) {
        Ok(u) if u.path().trim_end_matches('/').ends_with("/api/v3") => {
            u.host_str().unwrap_or("github.com").to_string()
        }
        _ => "github.com".to_string(),
    }
}

#[cfg(test)]
mod web_host_tests {
    use super::*;

    #[test]
    fn the_web_host_follows_the_api() {
        assert_eq!(github_host_for_api("https://api.github.com"), "github.com");
        assert_eq!(
            github_host_for_api("https://ghe.example.com/api/v3/"),
            "ghe.example.com"
        );
        assert_eq!(github_host_for_api("http://127.0.0.1:9/"), "github.com");
    }
}
