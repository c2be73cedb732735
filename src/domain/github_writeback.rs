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

/// What one written-back event needs.
pub struct Occurrence<'a> {
    pub outbox_id: i64,
    pub event: Event,
    pub task_id: &'a str,
    pub pr_url: Option<&'a str>,
    /// The worker's GitHub login, when it gave one.
    pub worker_handle: Option<&'a str>,
    pub attempt: i32,
}

/// The marker hidden in the comment of outbox row `id`.
pub fn marker(outbox_id: i64) -> String {
    format!("<!-- owp-outbox:{outbox_id} -->")
}

/// The GitHub calls for one event, in order.
pub fn plan(o: &Occurrence<'_>) -> Vec<Step> {
    let who = match o.worker_handle {
        Some(h) if !h.is_empty() => format!("@{h}"),
        _ => "a contributor".to_string(),
    };
    let text = match o.event {
        Event::Leased => format!(
            "OWP Pool: {who} is working on this (task `{}`, attempt {}).",
            o.task_id,
            o.attempt + 1
        ),
        Event::PrOpened => format!(
            "OWP Pool: {who} opened a pull request for this: {}",
            o.pr_url.unwrap_or("(no link)")
        ),
        Event::Merged => format!(
            "OWP Pool: the pull request for this was merged{}. Thank you!",
            o.pr_url.map(|u| format!(" ({u})")).unwrap_or_default()
        ),
        Event::Failed => format!(
            "OWP Pool: task `{}` failed for good after {} attempts; it needs a maintainer's look.",
            o.task_id, o.attempt
        ),
    };
    let comment = Step::Comment(format!("{text}\n\n{}", marker(o.outbox_id)));
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
    std::iter::once(comment).chain(labels).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn occ(event: Event) -> Occurrence<'static> {
        Occurrence {
            outbox_id: 7,
            event,
            task_id: "t_1",
            pr_url: Some("https://github.com/a/b/pull/3"),
            worker_handle: Some("alice"),
            attempt: 0,
        }
    }

    #[test]
    fn each_event_comments_first_then_moves_the_labels() {
        let leased = plan(&occ(Event::Leased));
        assert_eq!(leased.len(), 2);
        let Step::Comment(c) = &leased[0] else {
            panic!("a comment first")
        };
        assert!(c.contains("@alice") && c.contains("t_1") && c.ends_with(&marker(7)));
        assert_eq!(leased[1], Step::AddLabel(IN_PROGRESS.into()));
        let merged = plan(&occ(Event::Merged));
        assert!(matches!(&merged[0], Step::Comment(c) if c.contains("pull/3")));
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
