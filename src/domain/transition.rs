//! What a status report does to a task: the transition table of PROTOCOL.md, who may make
//! it, and the outcome (next status, attempt, requeue). The store applies the verdict.

use super::status::{Report, TaskStatus};

/// The task as the store read it, locked, at the start of the update.
#[derive(Clone, Debug)]
pub struct TaskView<'a> {
    pub status: TaskStatus,
    /// Lease holder, PR opener, or last holder, as the task row names it.
    pub holder: Option<&'a str>,
    pub lease_id: Option<&'a str>,
    pub lease_expired: bool,
}

/// The caller's most recent lease on this task, if it ever had one.
#[derive(Clone, Debug)]
pub struct PriorLease<'a> {
    pub lease_id: &'a str,
    pub last_report: Option<&'a str>,
    /// Ended by the scheduler (expired, worker offline), not by the holder's report.
    pub revoked: bool,
    /// The server ended an earlier lease of the caller on this task (expired, or the
    /// caller was offline): that attempt's process may still be running and report late.
    pub server_ended_earlier: bool,
}

impl PriorLease<'_> {
    /// The holder's own report `to` was the last thing applied under this lease.
    fn applied(&self, to: Report) -> bool {
        !self.revoked && self.last_report == Some(to.as_str())
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    Worker(&'a str),
    Admin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Make the transition.
    Apply,
    /// The caller holds the task and repeats its status: 200, the lease is renewed.
    Repeat,
    /// A report the server already applied, retried after the caller lost the task: 200, no change.
    AlreadyApplied,
    /// The caller's lease expired or the task moved on without it: 409 `lease_lost`.
    LeaseLost,
    /// Not the caller's task: 403.
    Forbidden,
    /// The table does not allow it: 409 `invalid_transition: from -> to`.
    Invalid,
    /// The caller holds the task again after the server ended an earlier lease of its on
    /// it, and did not say which lease the report is about: a late report of the old
    /// attempt must not land on the new one. 400.
    LeaseIdRequired,
}

/// The transition table for a lease holder (and, for `pr_opened`, the PR opener).
pub fn allowed(from: TaskStatus, to: Report) -> bool {
    use Report::{Closed, Released, Rest};
    use TaskStatus::*;
    match from {
        Leased => matches!(
            to,
            Rest(InProgress | Blocked | PrOpened | Completed | Failed) | Released
        ),
        InProgress => matches!(to, Rest(Blocked | PrOpened | Completed | Failed) | Released),
        Blocked => matches!(to, Rest(InProgress | PrOpened | Failed) | Released),
        PrOpened => matches!(to, Rest(Merged) | Closed),
        Ready | Completed | Merged | Failed => false,
    }
}

/// Decides what a report means. `lease_id` is the one the client sent, if any.
pub fn decide(
    task: &TaskView<'_>,
    actor: Actor<'_>,
    to: Report,
    lease_id: Option<&str>,
    prior: Option<&PriorLease<'_>>,
) -> Verdict {
    let repeats = to == Report::Rest(task.status);
    let worker = match actor {
        Actor::Admin => {
            return match task.status {
                _ if repeats && task.status.is_terminal() => Verdict::Repeat,
                TaskStatus::PrOpened if allowed(task.status, to) => Verdict::Apply,
                TaskStatus::PrOpened | TaskStatus::Merged | TaskStatus::Failed
                    if matches!(to, Report::Rest(TaskStatus::Merged) | Report::Closed) =>
                {
                    Verdict::Invalid
                }
                _ => Verdict::Forbidden,
            };
        }
        Actor::Worker(w) => w,
    };
    let holds = task.holder == Some(worker);
    if holds && lease_id.is_none() && prior.is_some_and(|p| p.server_ended_earlier) {
        return Verdict::LeaseIdRequired;
    }

    if holds && task.status.is_live() {
        let stale_lease = lease_id.is_some_and(|l| Some(l) != task.lease_id);
        return if stale_lease || task.lease_expired {
            Verdict::LeaseLost
        } else if repeats {
            Verdict::Repeat
        } else if allowed(task.status, to) {
            Verdict::Apply
        } else {
            Verdict::Invalid
        };
    }
    // the PR opener, or the holder that finished the task
    if holds && (task.status == TaskStatus::PrOpened || task.status.is_terminal()) {
        let stale_lease = lease_id.is_some_and(|l| prior.is_none_or(|p| p.lease_id != l));
        return if stale_lease {
            Verdict::LeaseLost
        } else if repeats {
            Verdict::Repeat
        } else if allowed(task.status, to) {
            Verdict::Apply
        } else if prior.is_some_and(|p| p.applied(to)) {
            Verdict::AlreadyApplied
        } else {
            Verdict::Invalid
        };
    }
    match prior {
        None => Verdict::Forbidden,
        Some(p) if p.applied(to) && lease_id.is_none_or(|l| l == p.lease_id) => {
            Verdict::AlreadyApplied
        }
        Some(_) => Verdict::LeaseLost,
    }
}

/// What an applied report leaves behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub status: TaskStatus,
    pub attempt: i32,
    /// The task went back to the queue, and why (audit `task_requeued`).
    pub requeued: Option<&'static str>,
    /// The current lease ends with this report (capacity is freed).
    pub ends_lease: bool,
    /// The repo slot and area lock are given back.
    pub frees_slot: bool,
}

/// The outcome of an allowed transition to `to`, given the task's attempt counters.
pub fn outcome(to: Report, attempt: i32, max_attempts: i32) -> Outcome {
    let keep = |status| Outcome {
        status,
        attempt,
        requeued: None,
        ends_lease: false,
        frees_slot: false,
    };
    match to {
        Report::Rest(s @ (TaskStatus::InProgress | TaskStatus::Blocked | TaskStatus::Leased)) => {
            keep(s)
        }
        Report::Rest(TaskStatus::PrOpened) => Outcome {
            ends_lease: true,
            ..keep(TaskStatus::PrOpened)
        },
        Report::Rest(s @ (TaskStatus::Completed | TaskStatus::Merged)) => Outcome {
            ends_lease: true,
            frees_slot: true,
            ..keep(s)
        },
        Report::Released => Outcome {
            requeued: Some("released"),
            ends_lease: true,
            frees_slot: true,
            ..keep(TaskStatus::Ready)
        },
        Report::Rest(TaskStatus::Failed) => failed_attempt(attempt, max_attempts, "failed"),
        Report::Closed => failed_attempt(attempt, max_attempts, "closed"),
        Report::Rest(TaskStatus::Ready) => keep(TaskStatus::Ready),
    }
}

/// A failed attempt (reported failure, PR closed unmerged, expired lease, vanished worker):
/// `attempt` grows, and the task is requeued until it reaches `max_attempts`. The sweeps
/// apply the same rule in SQL, in bulk (scheduler::lease_expiry, scheduler::offline_workers).
pub fn failed_attempt(attempt: i32, max_attempts: i32, reason: &'static str) -> Outcome {
    let attempt = attempt + 1;
    let terminal = attempt >= max_attempts;
    Outcome {
        status: if terminal {
            TaskStatus::Failed
        } else {
            TaskStatus::Ready
        },
        attempt,
        requeued: (!terminal).then_some(reason),
        ends_lease: true,
        frees_slot: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    fn r(s: &str) -> Report {
        s.parse().unwrap()
    }

    fn held(status: TaskStatus) -> TaskView<'static> {
        TaskView {
            status,
            holder: Some("w_me"),
            lease_id: status.is_live().then_some("l_1"),
            lease_expired: false,
        }
    }

    const MINE: PriorLease<'static> = PriorLease {
        lease_id: "l_1",
        last_report: None,
        revoked: false,
        server_ended_earlier: false,
    };

    #[test]
    fn the_table_is_exactly_the_protocol_table() {
        let table: &[(TaskStatus, &[&str])] = &[
            (
                Leased,
                &[
                    "in_progress",
                    "blocked",
                    "pr_opened",
                    "completed",
                    "failed",
                    "released",
                ],
            ),
            (
                InProgress,
                &["blocked", "pr_opened", "completed", "failed", "released"],
            ),
            (Blocked, &["in_progress", "pr_opened", "failed", "released"]),
            (PrOpened, &["merged", "closed"]),
            (Ready, &[]),
            (Completed, &[]),
            (Merged, &[]),
            (Failed, &[]),
        ];
        let reports = [
            "ready",
            "leased",
            "in_progress",
            "blocked",
            "pr_opened",
            "completed",
            "merged",
            "failed",
            "released",
            "closed",
        ];
        for (from, tos) in table {
            for to in reports {
                assert_eq!(allowed(*from, r(to)), tos.contains(&to), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn holder_moves_its_task_along_the_table() {
        let t = held(Leased);
        let me = Actor::Worker("w_me");
        assert_eq!(
            decide(&t, me, r("in_progress"), None, Some(&MINE)),
            Verdict::Apply
        );
        assert_eq!(
            decide(&t, me, r("leased"), None, Some(&MINE)),
            Verdict::Repeat
        );
        assert_eq!(
            decide(&t, me, r("merged"), None, Some(&MINE)),
            Verdict::Invalid
        );
        let b = held(Blocked);
        assert_eq!(
            decide(&b, me, r("completed"), None, Some(&MINE)),
            Verdict::Invalid
        );
    }

    #[test]
    fn an_expired_or_stale_lease_is_lost() {
        let me = Actor::Worker("w_me");
        let mut t = held(InProgress);
        assert_eq!(
            decide(&t, me, r("completed"), Some("l_old"), Some(&MINE)),
            Verdict::LeaseLost
        );
        assert_eq!(
            decide(&t, me, r("completed"), Some("l_1"), Some(&MINE)),
            Verdict::Apply
        );
        t.lease_expired = true;
        assert_eq!(
            decide(&t, me, r("completed"), None, Some(&MINE)),
            Verdict::LeaseLost
        );
    }

    #[test]
    fn a_task_given_to_someone_else_is_lost_to_its_old_holder_and_forbidden_to_strangers() {
        let t = TaskView {
            status: InProgress,
            holder: Some("w_other"),
            lease_id: Some("l_2"),
            lease_expired: false,
        };
        let me = Actor::Worker("w_me");
        assert_eq!(
            decide(&t, me, r("completed"), None, Some(&MINE)),
            Verdict::LeaseLost
        );
        assert_eq!(
            decide(&t, me, r("completed"), None, None),
            Verdict::Forbidden
        );
        let requeued = TaskView {
            status: Ready,
            holder: None,
            lease_id: None,
            lease_expired: false,
        };
        assert_eq!(
            decide(&requeued, me, r("in_progress"), None, Some(&MINE)),
            Verdict::LeaseLost
        );
    }

    #[test]
    fn a_retried_report_that_was_applied_is_answered_again() {
        let me = Actor::Worker("w_me");
        let requeued = TaskView {
            status: Ready,
            holder: None,
            lease_id: None,
            lease_expired: false,
        };
        let released = PriorLease {
            lease_id: "l_1",
            last_report: Some("released"),
            revoked: false,
            server_ended_earlier: false,
        };
        assert_eq!(
            decide(&requeued, me, r("released"), None, Some(&released)),
            Verdict::AlreadyApplied
        );
        assert_eq!(
            decide(&requeued, me, r("released"), Some("l_1"), Some(&released)),
            Verdict::AlreadyApplied
        );
        assert_eq!(
            decide(&requeued, me, r("released"), Some("l_9"), Some(&released)),
            Verdict::LeaseLost
        );
        assert_eq!(
            decide(&requeued, me, r("failed"), None, Some(&released)),
            Verdict::LeaseLost
        );
        let expired = PriorLease {
            lease_id: "l_1",
            last_report: Some("in_progress"),
            revoked: true,
            server_ended_earlier: false,
        };
        assert_eq!(
            decide(&requeued, me, r("in_progress"), None, Some(&expired)),
            Verdict::LeaseLost
        );
        let done = held(Completed);
        assert_eq!(
            decide(&done, me, r("completed"), None, Some(&MINE)),
            Verdict::Repeat
        );
        assert_eq!(
            decide(&done, me, r("in_progress"), None, Some(&MINE)),
            Verdict::Invalid
        );
    }

    #[test]
    fn holding_a_task_again_after_the_server_ended_a_lease_needs_the_lease_id_named() {
        let me = Actor::Worker("w_me");
        let t = TaskView {
            status: InProgress,
            holder: Some("w_me"),
            lease_id: Some("l_2"),
            lease_expired: false,
        };
        let second = PriorLease {
            lease_id: "l_2",
            last_report: None,
            revoked: false,
            server_ended_earlier: true,
        };
        assert_eq!(
            decide(&t, me, r("completed"), None, Some(&second)),
            Verdict::LeaseIdRequired
        );
        assert_eq!(
            decide(&t, me, r("completed"), Some("l_1"), Some(&second)),
            Verdict::LeaseLost
        );
        assert_eq!(
            decide(&t, me, r("completed"), Some("l_2"), Some(&second)),
            Verdict::Apply
        );
        // not held any more: the report is simply too late
        let gone = TaskView {
            holder: None,
            status: Ready,
            lease_id: None,
            lease_expired: false,
        };
        assert_eq!(
            decide(&gone, me, r("completed"), None, Some(&second)),
            Verdict::LeaseLost
        );
        // admins name no lease
        assert_eq!(
            decide(
                &held(PrOpened),
                Actor::Admin,
                r("merged"),
                None,
                Some(&second)
            ),
            Verdict::Apply
        );
    }

    #[test]
    fn the_pr_opener_and_an_admin_may_merge_or_close() {
        let t = held(PrOpened);
        let me = Actor::Worker("w_me");
        assert_eq!(
            decide(&t, me, r("merged"), None, Some(&MINE)),
            Verdict::Apply
        );
        assert_eq!(
            decide(&t, me, r("pr_opened"), None, Some(&MINE)),
            Verdict::Repeat
        );
        assert_eq!(
            decide(&t, me, r("in_progress"), None, Some(&MINE)),
            Verdict::Invalid
        );
        assert_eq!(
            decide(&t, Actor::Worker("w_x"), r("merged"), None, None),
            Verdict::Forbidden
        );
        assert_eq!(
            decide(&t, Actor::Admin, r("closed"), None, None),
            Verdict::Apply
        );
        assert_eq!(
            decide(&held(InProgress), Actor::Admin, r("completed"), None, None),
            Verdict::Forbidden
        );
        assert_eq!(
            decide(&held(Merged), Actor::Admin, r("merged"), None, None),
            Verdict::Repeat
        );
    }

    #[test]
    fn failures_count_attempts_until_terminal() {
        assert_eq!(outcome(Report::Rest(Failed), 0, 3).status, Ready);
        assert_eq!(outcome(Report::Rest(Failed), 0, 3).attempt, 1);
        assert_eq!(outcome(Report::Rest(Failed), 0, 3).requeued, Some("failed"));
        let last = outcome(Report::Closed, 2, 3);
        assert_eq!(
            (last.status, last.attempt, last.requeued),
            (Failed, 3, None)
        );
        assert_eq!(failed_attempt(0, 1, "lease_expired").status, Failed);
    }

    #[test]
    fn pr_opened_frees_capacity_but_keeps_the_slot() {
        let o = outcome(Report::Rest(PrOpened), 0, 3);
        assert!(o.ends_lease && !o.frees_slot);
        let rel = outcome(Report::Released, 1, 3);
        assert_eq!(
            (rel.status, rel.attempt, rel.requeued),
            (Ready, 1, Some("released"))
        );
        assert!(outcome(Report::Rest(Completed), 0, 3).frees_slot);
        assert!(!outcome(Report::Rest(InProgress), 0, 3).ends_lease);
    }
}
