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
    /// The live lease waits for a maintainer's approval (the repo's `claim_approval`).
    pub awaiting_approval: bool,
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
    /// The holder's claim waits for a maintainer's approval: only `released` goes. 403.
    AwaitingApproval,
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
        // an offered task is leased by accepting the offer, not by a report
        Ready | Offered | Completed | Merged | Failed | Cancelled => false,
    }
}

/// The statuses a holder's report `to` applies from (or, from `to` itself, repeats as a
/// renewal) when it may skip the lock-then-decide path: the store writes it in one
/// statement guarded by "the caller holds the task under the lease it names, unexpired,
/// in one of these statuses" (`store::tasks::guarded`). Under that guard [`decide`] says
/// `Apply` or `Repeat` whatever the prior leases, and [`outcome`] does not depend on the
/// attempt counters. Reports that need more (a PR link, the release count, the attempts of
/// a failure, an admin) answer `None` and take the locking path, as does a report whose
/// guard matches nothing: that path then gives the exact answer.
pub fn guarded_from(to: Report) -> Option<Vec<TaskStatus>> {
    use TaskStatus::{Blocked, Completed, InProgress};
    if !matches!(to, Report::Rest(InProgress | Blocked | Completed)) {
        return None;
    }
    let from = TaskStatus::ALL
        .into_iter()
        .filter(|&s| s.is_live() && (allowed(s, to) || to == Report::Rest(s)))
        .collect();
    Some(from)
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
        } else if task.awaiting_approval && to != Report::Released {
            Verdict::AwaitingApproval
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
    /// A lost attempt requeued the task: it waits out the retry backoff
    /// (`domain::retry`), longer for the worker that lost it.
    pub backs_off: bool,
}

impl Outcome {
    /// The same outcome with another attempt count.
    pub fn with_attempt(self, attempt: i32) -> Self {
        Self { attempt, ..self }
    }
}

/// The outcome of an allowed transition to `to`, given the task's attempt counters.
pub fn outcome(to: Report, attempt: i32, max_attempts: i32) -> Outcome {
    let keep = |status| Outcome {
        status,
        attempt,
        requeued: None,
        ends_lease: false,
        frees_slot: false,
        backs_off: false,
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
        // never allowed by the table: only the scheduler, offers and admins make these
        Report::Rest(s @ (TaskStatus::Ready | TaskStatus::Offered | TaskStatus::Cancelled)) => {
            keep(s)
        }
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
        backs_off: !terminal,
    }
}

#[cfg(test)]
mod tests;
