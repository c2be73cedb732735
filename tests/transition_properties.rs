//! Property tests of the transition rules (domain::transition): whatever the task, the
//! caller, the report and the leases, a verdict never lets a report through that the
//! protocol forbids, and outcomes keep their counters honest.

use owp_pool::domain::status::{Report, TaskStatus};
use owp_pool::domain::transition::{
    allowed, decide, failed_attempt, guarded_from, outcome, Actor, PriorLease, TaskView, Verdict,
};
use proptest::prelude::*;

const ME: &str = "w_me";
const LEASES: [&str; 3] = ["l_1", "l_2", "l_9"];

fn status() -> impl Strategy<Value = TaskStatus> {
    prop::sample::select(TaskStatus::ALL.to_vec())
}

fn report() -> impl Strategy<Value = Report> {
    let mut all: Vec<Report> = TaskStatus::ALL.iter().map(|s| Report::Rest(*s)).collect();
    all.extend([Report::Released, Report::Closed]);
    prop::sample::select(all)
}

fn lease() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(LEASES.to_vec()))
}

#[derive(Debug, Clone)]
struct Case {
    status: TaskStatus,
    holder: Option<&'static str>,
    current: Option<&'static str>,
    expired: bool,
    admin: bool,
    to: Report,
    sent: Option<&'static str>,
    prior: Option<(&'static str, Option<&'static str>, bool, bool)>,
}

fn case() -> impl Strategy<Value = Case> {
    let prior = prop::option::of((
        prop::sample::select(LEASES.to_vec()),
        prop::option::of(prop::sample::select(vec![
            "in_progress",
            "completed",
            "released",
            "failed",
            "merged",
        ])),
        any::<bool>(),
        any::<bool>(),
    ));
    (
        status(),
        prop::option::of(prop::sample::select(vec![ME, "w_other"])),
        lease(),
        any::<bool>(),
        any::<bool>(),
        report(),
        lease(),
        prior,
    )
        .prop_map(
            |(status, holder, current, expired, admin, to, sent, prior)| Case {
                status,
                holder,
                current,
                expired,
                admin,
                to,
                sent,
                prior,
            },
        )
}

fn verdict(c: &Case) -> Verdict {
    let task = TaskView {
        status: c.status,
        holder: c.holder,
        lease_id: c.current,
        lease_expired: c.expired,
        awaiting_approval: false,
    };
    let prior = c.prior.map(
        |(lease_id, last_report, revoked, server_ended_earlier)| PriorLease {
            lease_id,
            last_report,
            revoked,
            server_ended_earlier,
        },
    );
    let actor = if c.admin {
        Actor::Admin
    } else {
        Actor::Worker(ME)
    };
    decide(&task, actor, c.to, c.sent, prior.as_ref())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, max_global_rejects: 200_000, ..ProptestConfig::default() })]

    #[test]
    fn only_the_table_is_ever_applied(c in case()) {
        if verdict(&c) == Verdict::Apply {
            prop_assert!(allowed(c.status, c.to), "{:?}", c);
        }
    }

    #[test]
    fn admins_only_merge_or_close_an_opened_pr(c in case().prop_map(|c| Case { admin: true, ..c })) {
        if verdict(&c) == Verdict::Apply {
            prop_assert_eq!(c.status, TaskStatus::PrOpened);
            prop_assert!(matches!(c.to, Report::Rest(TaskStatus::Merged) | Report::Closed));
        }
    }

    #[test]
    fn nobody_changes_a_task_they_do_not_hold(
        c in case().prop_map(|c| Case { admin: false, holder: c.holder.filter(|h| *h != ME), ..c })
    ) {
        let v = verdict(&c);
        prop_assert!(v != Verdict::Apply && v != Verdict::Repeat, "{:?} -> {:?}", c, v);
    }

    #[test]
    fn an_expired_or_stale_live_lease_never_moves_the_task(
        c in case(),
        live in prop::sample::select(vec![TaskStatus::Leased, TaskStatus::InProgress, TaskStatus::Blocked]),
    ) {
        let c = Case { admin: false, holder: Some(ME), status: live, ..c };
        let stale = c.sent.is_some() && c.sent != c.current;
        prop_assume!(stale || c.expired);
        let v = verdict(&c);
        prop_assert!(v == Verdict::LeaseLost || v == Verdict::LeaseIdRequired, "{:?} -> {:?}", c, v);
    }

    #[test]
    fn outcomes_keep_attempts_and_slots_honest(to in report(), attempt in 0i32..100, max in 1i32..100) {
        // outcomes are asked only for reports the table allows from somewhere
        prop_assume!(TaskStatus::ALL.iter().any(|s| allowed(*s, to)));
        prop_assume!(attempt < max);
        let o = outcome(to, attempt, max);
        prop_assert!(o.attempt == attempt || o.attempt == attempt + 1);
        prop_assert!(!o.frees_slot || o.ends_lease, "a freed slot ends the lease");
        prop_assert!(o.requeued.is_none() || o.status == TaskStatus::Ready);
        if o.attempt == attempt + 1 {
            prop_assert_eq!(o.status == TaskStatus::Failed, attempt + 1 >= max);
        }
        if o.status.is_terminal() || o.status == TaskStatus::Ready {
            prop_assert!(o.ends_lease && o.frees_slot);
        }
    }

    #[test]
    fn a_failed_attempt_is_terminal_exactly_at_max_attempts(attempt in 0i32..1000, max in 1i32..1000) {
        let o = failed_attempt(attempt, max, "failed");
        prop_assert_eq!(o.attempt, attempt + 1);
        prop_assert_eq!(o.status == TaskStatus::Failed, attempt + 1 >= max);
        prop_assert_eq!(o.requeued.is_some(), attempt + 1 < max);
    }

    /// The one-statement report's guard (store::tasks::guarded) never applies what the
    /// locking path would refuse, nor with another outcome: whenever the guard matches (the
    /// caller holds the task under the lease it names, unexpired, in a guarded status),
    /// `decide` says Apply, or Repeat for the status itself, whatever the prior leases.
    #[test]
    fn the_guarded_report_agrees_with_the_locking_path(c in case(), attempt in 0i32..10, max in 1i32..10) {
        let Some(from) = guarded_from(c.to) else { return Ok(()) };
        prop_assume!(from.contains(&c.status));
        let lease = c.current.unwrap_or("l_1");
        let c = Case { admin: false, holder: Some(ME), current: Some(lease), sent: Some(lease), expired: false, ..c };
        let v = verdict(&c);
        if c.to == Report::Rest(c.status) {
            prop_assert_eq!(v, Verdict::Repeat, "{:?}", c);
        } else {
            prop_assert_eq!(v, Verdict::Apply, "{:?}", c);
            // the statement writes one outcome for every attempt count, and keeps the count
            let o = outcome(c.to, attempt, max);
            prop_assert_eq!(o.attempt, attempt);
            prop_assert_eq!(o, outcome(c.to, 0, 1).with_attempt(attempt));
            prop_assert!(o.requeued.is_none() && !o.backs_off);
        }
    }
}

/// Every live status a guarded report may leave is in its guard, so the common reports
/// (in_progress from leased, completed from in_progress) never pay the second round trip.
#[test]
fn the_guard_covers_the_common_reports() {
    let from = |s| guarded_from(Report::Rest(s)).unwrap_or_default();
    assert_eq!(
        from(TaskStatus::InProgress),
        vec![
            TaskStatus::Leased,
            TaskStatus::InProgress,
            TaskStatus::Blocked
        ]
    );
    assert_eq!(
        from(TaskStatus::Completed),
        vec![TaskStatus::Leased, TaskStatus::InProgress]
    );
    assert!(guarded_from(Report::Released).is_none());
    assert!(guarded_from(Report::Rest(TaskStatus::Failed)).is_none());
    assert!(guarded_from(Report::Rest(TaskStatus::PrOpened)).is_none());
}
