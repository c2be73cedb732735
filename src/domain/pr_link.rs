//! PR provenance: a worker's `pr_url`, parsed and judged against the task's repository.
//! Merge credit follows a PR link (webhooks and sync find the task by it), so a link is
//! accepted only when it names a pull request of the task's own repository, and it is
//! stored in one normalised form so that two tasks cannot hold the same PR under two
//! spellings (`/pull/7/files`, `HTTPS://GitHub.com/...`, `../` segments, a query).

use chrono::{DateTime, Utc};
use url::Url;

/// What GitHub says of a merged PR (a signed webhook payload, or the API on a sync).
#[derive(Clone, Debug, Default)]
pub struct PrEvidence {
    /// The PR author's login.
    pub author: Option<String>,
    pub opened_at: Option<DateTime<Utc>>,
}

impl PrEvidence {
    /// A merge earns its worker credit only when GitHub's record shows that worker opened
    /// the PR (its `github_handle`) after its lease was granted: a PR of someone else, or
    /// one that existed before the task was taken, is not the worker's work.
    pub fn credits(&self, handle: Option<&str>, granted_at: DateTime<Utc>) -> bool {
        match (&self.author, self.opened_at, handle) {
            (Some(author), Some(opened), Some(handle)) => {
                author.eq_ignore_ascii_case(handle) && opened >= granted_at
            }
            _ => false,
        }
    }
}

/// Where a task's PR links may point.
#[derive(Clone, Copy, Debug)]
pub enum PrRule<'a> {
    /// A pull request of `repo` (`owner/name`) on the GitHub host `host`.
    GitHub { host: &'a str, repo: &'a str },
    /// Under the repository's `pr_url_prefix` (a repository hosted elsewhere); a link on
    /// the GitHub host must still be a pull request link.
    Prefix {
        prefix: &'a str,
        github_host: &'a str,
    },
    /// A repository with neither an `owner/name` name nor a prefix: any https link.
    Any { github_host: &'a str },
}

impl<'a> PrRule<'a> {
    /// The rule for a repository: its prefix if it has one, else GitHub when its name is
    /// `owner/name`, else any https link.
    pub fn for_repo(repo: &'a str, prefix: Option<&'a str>, github_host: &'a str) -> Self {
        match prefix {
            Some(prefix) => Self::Prefix {
                prefix,
                github_host,
            },
            None if is_owner_repo(repo) => Self::GitHub {
                host: github_host,
                repo,
            },
            None => Self::Any { github_host },
        }
    }
}

/// A PR link as the pool keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrLink {
    /// The normalised link (no query, fragment, credentials or trailing path after the
    /// PR number).
    pub url: String,
    /// What makes two links the same PR: `host/owner/name#n` (lower-cased) for GitHub,
    /// else the normalised link.
    pub key: String,
    /// For a GitHub link: the repository (as the link spells it) and the PR number.
    pub github: Option<(String, u64)>,
}

fn is_owner_repo(repo: &str) -> bool {
    let mut parts = repo.split('/');
    matches!((parts.next(), parts.next(), parts.next()), (Some(o), Some(r), None) if !o.is_empty() && !r.is_empty())
}

/// Parses an https link; `url` resolves `.`/`..` segments (also percent-encoded ones) and
/// lower-cases the host, so the checks below see what a browser would open.
fn parse_https(raw: &str) -> Result<Url, String> {
    let u = Url::parse(raw.trim()).map_err(|_| "must be an https URL".to_string())?;
    if u.scheme() != "https" || u.host_str().is_none_or(str::is_empty) {
        return Err("must be an https URL".into());
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("must not carry credentials".into());
    }
    Ok(u)
}

/// `https://host/owner/name/pull/N[/...]` on `host`: (owner/name, N).
fn github_parts(u: &Url, host: &str) -> Option<(String, u64)> {
    if !u.host_str()?.eq_ignore_ascii_case(host) || u.port().is_some() {
        return None;
    }
    let segs: Vec<&str> = u.path_segments()?.collect();
    match segs.as_slice() {
        [owner, name, "pull", n, ..] if is_name(owner) && is_name(name) => {
            let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
            Some((format!("{owner}/{name}"), n))
        }
        _ => None,
    }
}

/// GitHub's owner and repository names: letters, digits, `-`, `_`, `.` (not `.`/`..`).
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn github_link(host: &str, repo: String, number: u64) -> PrLink {
    let host = host.to_ascii_lowercase();
    PrLink {
        url: format!("https://{host}/{repo}/pull/{number}"),
        key: format!("{host}/{}#{number}", repo.to_ascii_lowercase()),
        github: Some((repo, number)),
    }
}

/// The link without query, fragment or trailing slash.
fn plain(u: &Url) -> String {
    let mut u = u.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.as_str().trim_end_matches('/').to_string()
}

/// Judges `raw` against the rule: the normalised link, or why it is refused.
pub fn check(raw: &str, rule: PrRule<'_>) -> Result<PrLink, String> {
    if raw.len() > 2000 {
        return Err("must be at most 2000 characters".into());
    }
    let u = parse_https(raw)?;
    match rule {
        PrRule::GitHub { host, repo } => match github_parts(&u, host) {
            Some((linked, n)) if linked.eq_ignore_ascii_case(repo) => {
                Ok(github_link(host, linked, n))
            }
            Some((linked, _)) => Err(format!(
                "names a pull request of {linked}, not of this task's repository {repo}"
            )),
            None => Err(format!(
                "must be a pull request of {repo}: https://{host}/{repo}/pull/<number>"
            )),
        },
        PrRule::Prefix {
            prefix,
            github_host,
        } => {
            if !under_prefix(&u, prefix) {
                return Err(format!(
                    "must start with {prefix} (the repo's pr_url_prefix)"
                ));
            }
            same_host_rules(&u, github_host)
        }
        PrRule::Any { github_host } => same_host_rules(&u, github_host),
    }
}

/// A link on the GitHub host must be a PR link (then keyed as one); others are kept as is.
fn same_host_rules(u: &Url, github_host: &str) -> Result<PrLink, String> {
    if u.host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case(github_host))
    {
        return match github_parts(u, github_host) {
            Some((repo, n)) => Ok(github_link(github_host, repo, n)),
            None => Err(format!(
                "a link on {github_host} must be a pull request: https://{github_host}/<owner>/<repo>/pull/<number>"
            )),
        };
    }
    let url = plain(u);
    Ok(PrLink {
        key: url.clone(),
        url,
        github: None,
    })
}

/// The link is under the prefix: same host and port, and its path continues the prefix's
/// at a segment boundary (`/acme/w` does not cover `/acme/widgets-evil`).
fn under_prefix(u: &Url, prefix: &str) -> bool {
    let Ok(p) = Url::parse(prefix) else {
        return false;
    };
    if p.scheme() != u.scheme() || p.host_str() != u.host_str() || p.port() != u.port() {
        return false;
    }
    let (pp, up) = (p.path(), u.path());
    match up.strip_prefix(pp) {
        Some(rest) => pp.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GH: PrRule<'static> = PrRule::GitHub {
        host: "github.com",
        repo: "acme/widgets",
    };

    #[test]
    fn a_pull_request_of_the_tasks_repository_is_accepted_and_normalised() {
        let want = PrLink {
            url: "https://github.com/acme/widgets/pull/7".into(),
            key: "github.com/acme/widgets#7".into(),
            github: Some(("acme/widgets".into(), 7)),
        };
        for raw in [
            "https://github.com/acme/widgets/pull/7",
            "https://GitHub.com/acme/widgets/pull/7/files?x=1#top",
            "https://github.com/acme/widgets/pull/7/",
            " https://github.com/acme/widgets/pull/7 ",
        ] {
            assert_eq!(check(raw, GH).unwrap(), want, "{raw}");
        }
        // GitHub's names are case-insensitive: the same PR, the same key
        let upper = check("https://github.com/ACME/Widgets/pull/7", GH).unwrap();
        assert_eq!(upper.key, want.key);
    }

    #[test]
    fn links_to_other_repositories_hosts_or_shapes_are_refused() {
        for raw in [
            "https://github.com/evil/widgets/pull/7",
            "https://github.com/acme/widgets/pull/../../../evil/x/pull/1",
            "https://github.com/acme/widgets/pull/%2e%2e/%2e%2e/%2e%2e/evil/x/pull/1",
            "https://github.com.evil.example/acme/widgets/pull/7",
            "https://evil.example/github.com/acme/widgets/pull/7",
            "https://github.com/acme/widgets/issues/7",
            "https://github.com/acme/widgets/pull/0",
            "https://github.com/acme/widgets/pull/7x",
            "https://github.com:8443/acme/widgets/pull/7",
            "https://user:pw@github.com/acme/widgets/pull/7",
            "http://github.com/acme/widgets/pull/7",
            "javascript:alert(1)",
            "https://github.com/acme/widgets/pull/7\n@everyone",
        ] {
            assert!(check(raw, GH).is_err(), "{raw} accepted");
        }
    }

    #[test]
    fn a_prefix_matches_its_host_exactly_and_whole_path_segments() {
        let rule = |prefix| PrRule::Prefix {
            prefix,
            github_host: "github.com",
        };
        let gitlab = rule("https://gitlab.example/acme/w");
        assert_eq!(
            check(
                "https://gitlab.example/acme/w/-/merge_requests/3?x#y",
                gitlab
            )
            .unwrap()
            .url,
            "https://gitlab.example/acme/w/-/merge_requests/3"
        );
        for raw in [
            "https://gitlab.example/acme/widgets-evil/-/merge_requests/3",
            "https://gitlab.example.evil.example/acme/w/-/merge_requests/3",
            "https://gitlab.example/acme/w/../../other/x",
        ] {
            assert!(check(raw, gitlab).is_err(), "{raw} accepted");
        }
        let bare_host = rule("https://github.com");
        assert!(check("https://github.com.evil.example/a/b/pull/1", bare_host).is_err());
        // under a GitHub prefix, a link is still a PR link, keyed as one
        let l = check("https://github.com/acme/w/pull/5/commits", bare_host).unwrap();
        assert_eq!(l.key, "github.com/acme/w#5");
        assert!(check("https://github.com/acme/w/issues/5", bare_host).is_err());
    }

    #[test]
    fn the_rule_follows_the_repository() {
        assert!(matches!(
            PrRule::for_repo("acme/w", None, "github.com"),
            PrRule::GitHub { .. }
        ));
        assert!(matches!(
            PrRule::for_repo("acme/w", Some("https://x.example/"), "github.com"),
            PrRule::Prefix { .. }
        ));
        let any = PrRule::for_repo("widgets", None, "github.com");
        assert!(matches!(any, PrRule::Any { .. }));
        assert_eq!(
            check("https://ci.example/pr/1/", any).unwrap().key,
            "https://ci.example/pr/1"
        );
    }

    #[test]
    fn a_merge_credits_only_its_author_after_the_lease() {
        let granted: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let ev = |who: &str, at: &str| PrEvidence {
            author: Some(who.into()),
            opened_at: Some(at.parse().unwrap()),
        };
        assert!(ev("Alice", "2026-12-01T10:05:00Z").credits(Some("alice"), granted));
        assert!(!ev("mallory", "2026-12-01T10:05:00Z").credits(Some("alice"), granted));
        assert!(!ev("alice", "2026-12-01T09:00:00Z").credits(Some("alice"), granted));
        assert!(!ev("alice", "2026-12-01T10:05:00Z").credits(None, granted));
        assert!(!PrEvidence::default().credits(Some("alice"), granted));
    }
}
