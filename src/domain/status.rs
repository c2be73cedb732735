//! Task statuses as stored, the statuses a client may report, and a worker's own status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An enum whose values have wire names (also their stored names): `ALL`, `as_str`,
/// `Display`, `FromStr` and serde, from one list.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|v| v.as_str() == s)
                    .ok_or(UnknownStatus)
            }
        }
    };
}

#[derive(Debug, PartialEq, Eq)]
pub struct UnknownStatus;

named_enum! {
    /// Where a task rests. `released` and `closed` are reports, not resting places.
    TaskStatus {
        Ready => "ready",
        Offered => "offered",
        Leased => "leased",
        InProgress => "in_progress",
        Blocked => "blocked",
        PrOpened => "pr_opened",
        Completed => "completed",
        Merged => "merged",
        Failed => "failed",
        Cancelled => "cancelled",
    }
}

impl TaskStatus {
    /// Held under a live lease: counts against the worker's capacity (I2).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Leased | Self::InProgress | Self::Blocked)
    }

    /// Counts against the holder's capacity (I2): live, or reserved for it by an offer.
    pub fn holds_capacity(self) -> bool {
        self.is_live() || self == Self::Offered
    }

    /// Occupies one of the repo's review slots (I4) and its area lock (I5).
    pub fn is_open(self) -> bool {
        self.holds_capacity() || self == Self::PrOpened
    }

    /// Nothing moves it any more.
    pub fn is_terminal(self) -> bool {
        self.has_outcome() || self == Self::Cancelled
    }

    /// Ended by work (completed, merged, or failed for good), not withdrawn by an admin.
    pub fn has_outcome(self) -> bool {
        self.is_delivered() || self == Self::Failed
    }

    /// The work was delivered.
    pub fn is_delivered(self) -> bool {
        matches!(self, Self::Completed | Self::Merged)
    }

    /// Holds the PR link it reported: not back in the queue, not given up. At most one
    /// such task per PR.
    pub fn holds_pr(self) -> bool {
        self.is_live() || self == Self::PrOpened || self.is_delivered()
    }

    /// Each class with the SQL function that says it in statements (migration
    /// `status_classes`); a test checks both agree on every status.
    pub const SQL_CLASSES: [(&'static str, StatusClass); 7] = [
        ("task_is_live", Self::is_live),
        ("task_holds_capacity", Self::holds_capacity),
        ("task_is_open", Self::is_open),
        ("task_is_terminal", Self::is_terminal),
        ("task_has_outcome", Self::has_outcome),
        ("task_is_delivered", Self::is_delivered),
        ("task_holds_pr", Self::holds_pr),
    ];
}

/// A class of task statuses: whether a status belongs to it.
pub type StatusClass = fn(TaskStatus) -> bool;

named_enum! {
    /// A worker's own status, as its heartbeats report it. A paused worker keeps its leases
    /// but gets no new work (I8).
    WorkerStatus {
        Idle => "idle",
        Working => "working",
        Paused => "paused",
    }
}

named_enum! {
    /// Why a worker rejects an offer (`POST /v1/work/offers/{id}/reject`): counted per
    /// task, so maintainers learn which tasks are unclear or too large.
    RejectReason {
        InsufficientTime => "insufficient_time",
        UnclearRequirements => "unclear_requirements",
        SkillMismatch => "skill_mismatch",
        TooLarge => "too_large",
        Other => "other",
    }
}

/// A status a client may send in `POST /v1/tasks/{id}/status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Rest(TaskStatus),
    Released,
    Closed,
}

impl Report {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rest(s) => s.as_str(),
            Self::Released => "released",
            Self::Closed => "closed",
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Report {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "released" => Ok(Self::Released),
            "closed" => Ok(Self::Closed),
            // only an admin cancels, through its own route; only an offer makes `offered`
            "cancelled" | "offered" => Err(UnknownStatus),
            other => other.parse().map(Self::Rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for s in TaskStatus::ALL {
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
            if !matches!(s, TaskStatus::Cancelled | TaskStatus::Offered) {
                assert_eq!(s.as_str().parse::<Report>(), Ok(Report::Rest(s)));
            }
        }
        assert!("cancelled".parse::<Report>().is_err(), "only admins cancel");
        assert!("offered".parse::<Report>().is_err(), "only offers reserve");
        assert_eq!("released".parse::<Report>(), Ok(Report::Released));
        assert_eq!("closed".parse::<Report>(), Ok(Report::Closed));
        assert_eq!("done".parse::<Report>(), Err(UnknownStatus));
        assert_eq!("Leased".parse::<TaskStatus>(), Err(UnknownStatus));
        for s in WorkerStatus::ALL {
            assert_eq!(s.as_str().parse::<WorkerStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(
            serde_json::to_value(TaskStatus::InProgress).unwrap(),
            "in_progress"
        );
    }

    #[test]
    fn live_open_and_terminal_sets_match_the_protocol() {
        use TaskStatus::*;
        let live: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_live())
            .collect();
        assert_eq!(live, [Leased, InProgress, Blocked]);
        let open: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_open())
            .collect();
        assert_eq!(open, [Offered, Leased, InProgress, Blocked, PrOpened]);
        let holding: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.holds_capacity())
            .collect();
        assert_eq!(holding, [Offered, Leased, InProgress, Blocked]);
        let terminal: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, [Completed, Merged, Failed, Cancelled]);
    }
}
