//! The transition table and its verdicts, case by case (the properties are in
//! tests/transition_properties.rs).

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
        awaiting_approval: false,
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
        awaiting_approval: false,
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
        awaiting_approval: false,
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
        awaiting_approval: false,
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
        awaiting_approval: false,
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
        awaiting_approval: false,
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

#[test]
fn only_a_lost_attempt_that_requeues_backs_off() {
    assert!(outcome(Report::Rest(Failed), 0, 3).backs_off);
    assert!(outcome(Report::Closed, 1, 3).backs_off);
    assert!(failed_attempt(0, 3, "lease_expired").backs_off);
    // the last attempt is terminal: nothing to wait for
    assert!(!outcome(Report::Rest(Failed), 2, 3).backs_off);
    // a release is not a failure: the task is ready at once, for anyone
    assert!(!outcome(Report::Released, 0, 3).backs_off);
    assert!(!outcome(Report::Rest(Completed), 0, 3).backs_off);
}

#[test]
fn a_claim_awaiting_approval_may_only_be_released() {
    let mut t = held(Leased);
    t.awaiting_approval = true;
    let w = Actor::Worker("w_me");
    for to in ["in_progress", "blocked", "failed", "leased"] {
        assert_eq!(
            decide(&t, w, r(to), Some("l_1"), None),
            Verdict::AwaitingApproval,
            "{to}"
        );
    }
    assert_eq!(
        decide(&t, w, Report::Released, Some("l_1"), None),
        Verdict::Apply
    );
    // a stale lease is lost whatever waits on the current one
    assert_eq!(
        decide(&t, w, r("in_progress"), Some("l_0"), None),
        Verdict::LeaseLost
    );
    t.awaiting_approval = false;
    assert_eq!(
        decide(&t, w, r("in_progress"), Some("l_1"), None),
        Verdict::Apply
    );
}
