//! How a GitHub issue becomes a task: the rule `owp admin import-github` follows (and a
//! webhook's label import will). Labels carry the task's fields by prefix:
//!
//! | label | task field |
//! |---|---|
//! | `skill:<name>` | a required skill (each such label adds one) |
//! | `skills:<a>,<b>` (v0.1) | required skills, comma-separated |
//! | `area:<name>` | `area` (the first such label) |
//! | `points:<n>` or `estimate:<n>` | `estimate_points` (1-100) |
//! | `size:<XS..XL or n>` (v0.1) | `estimate_points` (`compat::size_points`) |
//! | `priority:<n>` or `priority:<low..critical>` (v0.1) | `priority` (`compat::priority_value`) |
//! | `tier:<n>` | `tier` (0-3) |
//!
//! Prefixes are case-insensitive and a space after the colon is allowed; a label with a
//! value that is not a number in range is ignored, as is every other label (the import
//! label among them). The title is kept (cut at 300 characters), the description is the
//! body with a link to the issue (cut to fit 20,000), and the task's `external_id` is
//! `github:<owner>/<repo>#<number>`, so an issue becomes one task however often it is
//! imported.

use super::compat;

pub const MAX_TITLE: usize = 300;
pub const MAX_DESCRIPTION: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueTask {
    pub title: String,
    pub description: String,
    pub required_skills: Vec<String>,
    pub area: Option<String>,
    pub estimate_points: Option<i64>,
    pub priority: Option<i64>,
    pub tier: Option<i64>,
    pub external_id: String,
}

/// An issue as the importer sees it.
pub struct Issue<'a> {
    /// `owner/repo`
    pub repo: &'a str,
    pub number: u64,
    pub title: &'a str,
    pub body: Option<&'a str>,
    pub html_url: &'a str,
    pub labels: Vec<&'a str>,
}

pub fn external_id(repo: &str, number: u64) -> String {
    format!("github:{repo}#{number}")
}

/// `github:owner/repo#42` -> (`owner/repo`, 42): an owner and a name without `/` or `#`,
/// and 1 to 18 digits (the outbox keeps the number as a bigint). SQL says the same rule (`github_issue_key`, which the write-back trigger
/// uses); a test checks both agree.
pub fn parse_external_id(id: &str) -> Option<(&str, u64)> {
    let (repo, number) = id.strip_prefix("github:")?.split_once('#')?;
    let (owner, name) = repo.split_once('/')?;
    let part_ok = |p: &str| !p.is_empty() && !p.contains(['/', '#']);
    let digits = (1..=18).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit());
    let number = number.parse().ok().filter(|_| digits)?;
    (part_ok(owner) && part_ok(name)).then_some((repo, number))
}

pub fn to_task(issue: &Issue<'_>) -> IssueTask {
    let mut task = IssueTask {
        title: cut(issue.title.trim(), MAX_TITLE),
        description: String::new(),
        required_skills: vec![],
        area: None,
        estimate_points: None,
        priority: None,
        tier: None,
        external_id: external_id(issue.repo, issue.number),
    };
    if task.title.is_empty() {
        task.title = format!("{}#{}", issue.repo, issue.number);
    }
    for label in &issue.labels {
        let Some((key, value)) = label.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let number = |lo: i64, hi: i64| value.parse::<i64>().ok().filter(|n| (lo..=hi).contains(n));
        match key.trim().to_ascii_lowercase().as_str() {
            "skill" => add_skill(&mut task.required_skills, value),
            "skills" => value
                .split(',')
                .for_each(|s| add_skill(&mut task.required_skills, s)),
            "area" if task.area.is_none() => task.area = Some(cut(value, 100)),
            "points" | "estimate" => task.estimate_points = number(1, 100).or(task.estimate_points),
            "size" => task.estimate_points = compat::size_points(value).or(task.estimate_points),
            "priority" => {
                task.priority = number(i32::MIN.into(), i32::MAX.into())
                    .or_else(|| compat::priority_value(value))
                    .or(task.priority)
            }
            "tier" => task.tier = number(0, 3).or(task.tier),
            _ => {}
        }
    }
    let link = format!("\n\nGitHub issue: {}", issue.html_url);
    let body = issue.body.unwrap_or("").trim();
    let room = MAX_DESCRIPTION.saturating_sub(link.chars().count());
    task.description = format!("{}{link}", cut(body, room))
        .trim_start()
        .to_string();
    task
}

/// A skill label's value, lower-cased, once; blank or over 50 characters is ignored.
fn add_skill(skills: &mut Vec<String>, value: &str) {
    let skill = value.trim().to_lowercase();
    if !skill.is_empty() && !skills.contains(&skill) && skill.chars().count() <= 50 {
        skills.push(skill);
    }
}

/// At most `max` characters; a cut text ends with `…`.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue<'a>(labels: Vec<&'a str>, body: Option<&'a str>) -> Issue<'a> {
        Issue {
            repo: "acme/widgets",
            number: 42,
            title: "  Fix the parser ",
            body,
            html_url: "https://github.com/acme/widgets/issues/42",
            labels,
        }
    }

    #[test]
    fn labels_become_fields_by_prefix() {
        let t = to_task(&issue(
            vec![
                "owp",
                "skill:Rust",
                "Skill: sql",
                "skill:rust",
                "area:parser",
                "area:other",
                "points:3",
                "priority: 20",
                "tier:1",
                "bug",
            ],
            Some("It breaks."),
        ));
        assert_eq!(t.title, "Fix the parser");
        assert_eq!(t.required_skills, vec!["rust", "sql"]);
        assert_eq!(t.area.as_deref(), Some("parser"));
        assert_eq!(t.estimate_points, Some(3));
        assert_eq!(t.priority, Some(20));
        assert_eq!(t.tier, Some(1));
        assert_eq!(t.external_id, "github:acme/widgets#42");
        assert_eq!(
            t.description,
            "It breaks.\n\nGitHub issue: https://github.com/acme/widgets/issues/42"
        );
    }

    #[test]
    fn v01_label_conventions_are_read_too() {
        let t = to_task(&issue(
            vec![
                "pool:ready",
                "skills:Rust, sql,,docs",
                "size:L",
                "priority:high",
            ],
            None,
        ));
        assert_eq!(t.required_skills, vec!["rust", "sql", "docs"]);
        assert_eq!(t.estimate_points, Some(5));
        assert_eq!(t.priority, Some(50));
        let t = to_task(&issue(
            vec!["size:huge-ish", "priority:soon", "size:2"],
            None,
        ));
        assert_eq!((t.estimate_points, t.priority), (Some(2), None));
    }

    #[test]
    fn values_out_of_range_are_ignored() {
        let t = to_task(&issue(
            vec!["points:0", "points:x", "tier:9", "estimate:101"],
            None,
        ));
        assert_eq!((t.estimate_points, t.tier), (None, None));
        assert!(t.description.starts_with("GitHub issue:"));
    }

    #[test]
    fn keys_and_pr_links_are_read_back() {
        assert_eq!(parse_external_id("github:acme/w#42"), Some(("acme/w", 42)));
        assert_eq!(parse_external_id("github:acme#42"), None);
        assert_eq!(parse_external_id("yaml:acme/w#42"), None);
    }

    #[test]
    fn long_bodies_are_cut_to_fit_with_the_link() {
        let body = "x".repeat(30_000);
        let t = to_task(&issue(vec![], Some(&body)));
        assert_eq!(t.description.chars().count(), MAX_DESCRIPTION);
        assert!(t.description.ends_with("/issues/42"));
    }
}
