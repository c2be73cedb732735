//! What the pool tells an issue on GitHub when its task moves (write-back): a short
//! comment, and labels that show the pool's state where maintainers work. One event
//! becomes a few GitHub calls ("steps"); each comment carries a hidden marker naming its
//! outbox row, so a comment whose delivery had no clear answer is found, not posted twice.

/// The task events that are written back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Leased,
    PrOpened,
    Merged,
    Failed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Leased => "leased",
            Event::PrOpened => "pr_opened",
            Event::Merged => "merged",
            Event::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Event::Leased, Event::PrOpened, Event::Merged, Event::Failed]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

pub const IN_PROGRESS: &str = "owp:in-progress";
pub const PR_OPEN: &str = "owp:pr-open";
pub const DONE: &str = "owp:done";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Comment(String),
    AddLabel(String),
    RemoveLabel(String),
}

/// What one written-back event needs. Nothing a worker wrote is here: the bot speaks for
/// the project, so its comments carry only what the pool itself made (task ids, counts)
/// and a PR number parsed from a link the pool checked; they mention nobody.
pub struct Occurrence<'a> {
    pub outbox_id: i64,
    pub event: Event,
    pub task_id: &'a str,
    /// The repository (`owner/name`).
    pub gh_repo: &'a str,
    /// The task's PR: its repository and number (domain::pr_link).
    pub pr: Option<(&'a str, u64)>,
    pub attempt: i32,
    /// Another lease of this issue was announced within OWP_GITHUB_COMMENT_COOLDOWN: move
    /// the labels, post no comment (a claim/release loop must not spam the issue).
    pub quiet: bool,
}

impl Occurrence<'_> {
    /// `#12` for a PR of the repository, `owner/name#12` for another's.
    fn pr_ref(&self) -> Option<String> {
        self.pr.map(|(repo, n)| {
            if repo.eq_ignore_ascii_case(self.gh_repo) {
                format!("#{n}")
            } else {
                format!("{repo}#{n}")
            }
        })
    }
}

/// The marker hidden in the comment of outbox row `id`.
pub fn marker(outbox_id: i64) -> String {
    format!("<!-- owp-outbox:{outbox_id} -->")
}

/// The GitHub calls for one event, in order.
pub fn plan(o: &Occurrence<'_>) -> Vec<Step> {
    let pr = o.pr_ref();
    let text = match o.event {
        Event::Leased => format!(
            "OWP Pool: a contributor is working on this (task `{}`, attempt {}).",
            o.task_id,
            o.attempt + 1
        ),
        Event::PrOpened => match &pr {
            Some(pr) => format!(
                "OWP Pool: pull request {pr} is open for this (task `{}`).",
                o.task_id
            ),
            None => format!(
                "OWP Pool: a pull request is open for this (task `{}`).",
                o.task_id
            ),
        },
        Event::Merged => format!(
            "OWP Pool: the pull request for this{} was merged. Thank you!",
            pr.map(|p| format!(" ({p})")).unwrap_or_default()
        ),
        Event::Failed => format!(
            "OWP Pool: task `{}` failed for good after {} attempts; it needs a maintainer's look.",
            o.task_id, o.attempt
        ),
    };
    let comment = (!(o.quiet && o.event == Event::Leased))
        .then(|| Step::Comment(format!("{text}\n\n{}", marker(o.outbox_id))));
    let labels = match o.event {
        Event::Leased => vec![Step::AddLabel(IN_PROGRESS.into())],
        Event::PrOpened => vec![
            Step::AddLabel(PR_OPEN.into()),
            Step::RemoveLabel(IN_PROGRESS.into()),
        ],
        Event::Merged => vec![
            Step::AddLabel(DONE.into()),
            Step::RemoveLabel(PR_OPEN.into()),
            Step::RemoveLabel(IN_PROGRESS.into()),
        ],
        Event::Failed => vec![
            Step::RemoveLabel(PR_OPEN.into()),
            Step::RemoveLabel(IN_PROGRESS.into()),
        ],
    };
    comment.into_iter().chain(labels).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(event: Event) -> Occurrence<'static> {
        Occurrence {
            outbox_id: 7,
            event,
            task_id: "t_1",
            gh_repo: "a/b",
            pr: Some(("a/b", 3)),
            attempt: 0,
            quiet: false,
        }
    }

    #[test]
    fn comments_carry_no_worker_text_and_mention_nobody() {
        for e in [Event::Leased, Event::PrOpened, Event::Merged, Event::Failed] {
            let Step::Comment(c) = &plan(&occ(e))[0] else {
                panic!("a comment first")
            };
            assert!(!c.contains('@') && !c.contains("http"), "{c}");
        }
        let Step::Comment(c) = &plan(&occ(Event::PrOpened))[0] else {
            panic!()
        };
        assert!(c.contains("pull request #3"), "{c}");
        let other = Occurrence {
            pr: Some(("x/y", 9)),
            ..occ(Event::Merged)
        };
        assert!(matches!(&plan(&other)[0], Step::Comment(c) if c.contains("(x/y#9)")));
    }

    #[test]
    fn a_lease_announced_again_within_the_cooldown_only_moves_labels() {
        let quiet = Occurrence {
            quiet: true,
            ..occ(Event::Leased)
        };
        assert_eq!(plan(&quiet), vec![Step::AddLabel(IN_PROGRESS.into())]);
        let merged = Occurrence {
            quiet: true,
            ..occ(Event::Merged)
        };
        assert!(matches!(&plan(&merged)[0], Step::Comment(_)));
    }

    #[test]
    fn each_event_comments_first_then_moves_the_labels() {
        let leased = plan(&occ(Event::Leased));
        assert_eq!(leased.len(), 2);
        let Step::Comment(c) = &leased[0] else {
            panic!("a comment first")
        };
        assert!(c.contains("t_1") && c.ends_with(&marker(7)));
        assert_eq!(leased[1], Step::AddLabel(IN_PROGRESS.into()));
        let merged = plan(&occ(Event::Merged));
        assert!(matches!(&merged[0], Step::Comment(c) if c.contains("#3")));
        assert!(merged.contains(&Step::RemoveLabel(IN_PROGRESS.into())));
        assert!(merged.contains(&Step::AddLabel(DONE.into())));
    }

    #[test]
    fn events_round_trip_by_name() {
        for e in [Event::Leased, Event::PrOpened, Event::Merged, Event::Failed] {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        assert_eq!(Event::parse("ready"), None);
    }
}
