//! Working one lease: run the worker's command (or simulate it), keep the lease renewed
//! while it runs, and report how it ended (with a PR link when one was opened).

use super::agent::*;

use std::sync::atomic::Ordering;

use rand::Rng;
use tokio::sync::watch;

use crate::cli::worker::exec::{self, Process, MAX_MESSAGE};
use crate::client::retry::{retry, Backoff};
use crate::client::ClientResult;
use crate::wire::tasks::StatusRequest;
use crate::wire::work::Lease;

pub(super) enum Ended {
    Finished(Outcome),
    LeaseLost,
    Aborted,
}

pub(super) enum Outcome {
    Done { pr_url: Option<String> },
    Failed { message: String },
}

/// One lease, start to report.
pub(super) async fn work_on(shared: &Shared, lease: Lease, mut abort: watch::Receiver<bool>) {
    let task = lease.task_id.clone();
    tracing::info!(task = %task, repo = %lease.repo, title = %lease.title, "took a task");
    let start = StatusRequest {
        lease_id: Some(lease.lease_id.clone()),
        ..StatusRequest::to("in_progress")
    };
    match report(shared, &lease.task_id, &start).await {
        Ok(_) => {}
        Err(e) if e.is_lease_lost() => {
            shared.tally.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(task = %task, "lease lost before the work started");
            return;
        }
        Err(e) => {
            tracing::warn!(task = %task, error = %e, "cannot report in_progress; working anyway")
        }
    }
    let ended = match &shared.options.work {
        Work::Shell(cmd) => run_shell(shared, cmd, &lease, &mut abort).await,
        Work::Simulated(sim) => {
            tokio::select! {
                o = simulate(sim, &lease) => Ended::Finished(o),
                () = renew_until_lost(shared, &lease) => Ended::LeaseLost,
                _ = abort.wait_for(|a| *a) => Ended::Aborted,
            }
        }
    };
    match ended {
        Ended::LeaseLost => {
            shared.tally.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(task = %task, "lease lost: the work was stopped");
        }
        Ended::Aborted => {
            report_outcome(
                shared,
                &lease,
                with_lease(&lease, "released", None),
                "released",
            )
            .await
        }
        Ended::Finished(Outcome::Done { pr_url: Some(url) }) => {
            let req = StatusRequest {
                pr_url: Some(url),
                ..with_lease(&lease, "pr_opened", None)
            };
            report_outcome(shared, &lease, req, "pr_opened").await
        }
        Ended::Finished(Outcome::Done { pr_url: None }) => {
            report_outcome(
                shared,
                &lease,
                with_lease(&lease, "completed", None),
                "completed",
            )
            .await
        }
        Ended::Finished(Outcome::Failed { message }) => {
            let req = with_lease(&lease, "failed", Some(message));
            report_outcome(shared, &lease, req, "failed").await
        }
    }
}

pub(super) async fn run_shell(
    shared: &Shared,
    cmd: &str,
    lease: &Lease,
    abort: &mut watch::Receiver<bool>,
) -> Ended {
    let env = exec::task_env(lease, &shared.worker_id, shared.client.base());
    let mut process = match Process::spawn(cmd, lease, env) {
        Ok(p) => p,
        Err(e) => {
            return Ended::Finished(Outcome::Failed {
                message: format!("the worker could not start its command: {e}"),
            })
        }
    };
    let ended = tokio::select! {
        exit = process.wait() => match exit {
            Ok(exit) if exit.success => Ended::Finished(Outcome::Done { pr_url: exit.pr_url }),
            Ok(exit) => Ended::Finished(Outcome::Failed {
                message: format!("command failed ({}): {}", exit.how, exit.tail),
            }),
            Err(e) => Ended::Finished(Outcome::Failed {
                message: format!("the worker lost track of its command: {e}"),
            }),
        },
        () = renew_until_lost(shared, lease) => Ended::LeaseLost,
        _ = abort.wait_for(|a| *a) => Ended::Aborted,
    };
    if !matches!(ended, Ended::Finished(_)) {
        process.terminate().await;
    }
    ended
}

pub(super) async fn simulate(sim: &Simulation, lease: &Lease) -> Outcome {
    let (pause, fails, opens_pr, n) = {
        let mut rng = rand::rng();
        let pause = if sim.max > sim.min {
            rng.random_range(sim.min..=sim.max)
        } else {
            sim.min
        };
        (
            pause,
            rng.random_bool(sim.fail_rate.clamp(0.0, 1.0)),
            rng.random_bool(sim.pr_rate.clamp(0.0, 1.0)),
            // wide: one PR earns credit for one task, so simulated numbers must not repeat
            rng.random_range(1..1_000_000_000u32),
        )
    };
    tokio::time::sleep(pause).await;
    if fails {
        return Outcome::Failed {
            message: "simulated failure".into(),
        };
    }
    Outcome::Done {
        pr_url: opens_pr.then(|| simulated_pr_url(&lease.repo, n)),
    }
}

/// A PR link on the repo's forge when the name looks like `owner/name`.
pub(super) fn simulated_pr_url(repo: &str, n: u32) -> String {
    if repo.split('/').count() == 2 && !repo.contains(' ') {
        format!("https://github.com/{repo}/pull/{n}")
    } else {
        format!("https://example.invalid/pull/{n}")
    }
}

/// Renews the lease every `renew_every` by repeating `in_progress`; returns only when the
/// server says the lease is gone.
pub(super) async fn renew_until_lost(shared: &Shared, lease: &Lease) {
    let renew = StatusRequest {
        lease_id: Some(lease.lease_id.clone()),
        ..StatusRequest::to("in_progress")
    };
    loop {
        tokio::time::sleep(shared.options.renew_every).await;
        match shared.client.report(&lease.task_id, &renew).await {
            Ok(_) => {}
            Err(e) if e.is_lease_lost() => return,
            Err(e) => {
                tracing::warn!(task = %lease.task_id, error = %e, "renewal failed; trying again next time")
            }
        }
    }
}

pub(super) fn with_lease(lease: &Lease, status: &str, message: Option<String>) -> StatusRequest {
    StatusRequest {
        lease_id: Some(lease.lease_id.clone()),
        message: message.map(|m| m.chars().take(MAX_MESSAGE).collect()),
        ..StatusRequest::to(status)
    }
}

pub(super) async fn report(
    shared: &Shared,
    task_id: &str,
    req: &StatusRequest,
) -> ClientResult<()> {
    retry(
        Backoff::default(),
        REPORT_TRIES,
        |e, pause| tracing::warn!(task = %task_id, error = %e, pause = ?pause, "report failed; retrying"),
        || shared.client.report(task_id, req),
    )
    .await
    .map(|_| ())
}

/// Reports an outcome and counts it. A result the server refuses (a PR link that is not
/// the repo's, say) is reported as a failure naming why, so the task is not stuck.
pub(super) async fn report_outcome(
    shared: &Shared,
    lease: &Lease,
    req: StatusRequest,
    what: &'static str,
) {
    let task = &lease.task_id;
    let counter = match what {
        "completed" => &shared.tally.completed,
        "pr_opened" => &shared.tally.pr_opened,
        "failed" => &shared.tally.failed,
        _ => &shared.tally.released,
    };
    match report(shared, task, &req).await {
        Ok(()) => {
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(task = %task, status = what, "reported");
        }
        Err(e) if e.is_lease_lost() => {
            shared.tally.lost.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(task = %task, "lease lost before the result was reported");
        }
        Err(e)
            if what != "failed" && what != "released" && e.code() == Some("validation_error") =>
        {
            tracing::warn!(task = %task, error = %e, "the server refused the result; reporting a failure");
            let message = format!("the worker's result was refused: {e}");
            let req = with_lease(lease, "failed", Some(message));
            Box::pin(report_outcome(shared, lease, req, "failed")).await
        }
        Err(e) => tracing::error!(task = %task, error = %e, status = what, "cannot report"),
    }
}
