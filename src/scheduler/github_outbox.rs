//! Duty: deliver the write-back outbox to GitHub. Runs on the leader every
//! `OWP_GITHUB_OUTBOX_INTERVAL`, in a loop of its own (GitHub may be slow; the sweeps must
//! not wait for it). Each outbox row is one task event, delivered as the steps of
//! `domain::github_writeback::plan`; every step GitHub accepts is recorded before the
//! next, so a retry never repeats one, and a comment whose answer was lost is looked for
//! (by its marker) before it is posted again. Failures retry with exponential backoff
//! (the interval doubling per try, at most 30 min); GitHub's rate limit pauses delivery
//! until it resets; after `OWP_GITHUB_OUTBOX_MAX_ATTEMPTS` tries, or an answer no retry
//! can change (404, 422, ...), the event is given up: `owp_github_outbox_total{result=
//! "gave_up"}`, the task's history, and `GET /v1/admin/github/outbox?state=failed`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::app::AppContext;
use crate::domain::github_writeback::{marker, plan, Event, Occurrence, Step};
use crate::domain::pr_link::{self, PrRule};
use crate::github::{GhError, GitHub};
use crate::store::github::{self as outbox, OutboxRow};
use crate::store::StoreResult;

/// Rows one run claims.
const BATCH: i64 = 20;
/// How long a claimed row is ours (longer than a row's calls can take).
const HOLD: Duration = Duration::from_secs(120);
const MAX_BACKOFF: Duration = Duration::from_secs(1800);

/// Delivers on every tick while this replica leads and a token is configured, until the
/// replica stops.
pub async fn run_service(app: AppContext) {
    {
        let gh = app
            .settings
            .github
            .github_token
            .as_ref()
            .map(|t| GitHub::new(&app.settings.github.github_api_url, Some(t.expose())));
        let mut paused_until = tokio::time::Instant::now();
        let mut warned = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(app.settings.github.github_outbox_interval) => {}
                () = app.stopped() => break,
            }
            if !app.is_leader.load(Ordering::Relaxed) || tokio::time::Instant::now() < paused_until
            {
                continue;
            }
            let Some(gh) = &gh else {
                // without a token nothing can be delivered: say so once, keep the rows
                if !warned {
                    if let Ok(n) = outbox::pending(&app.pool).await {
                        if n > 0 {
                            tracing::warn!(pending = n, "GitHub write-back is on for some repo but OWP_GITHUB_TOKEN is not set: nothing is delivered");
                            warned = true;
                        }
                    }
                }
                continue;
            };
            match run(&app, gh).await {
                Ok(Some(wait)) => {
                    tracing::warn!(wait = ?wait, "GitHub rate limit: write-back paused");
                    paused_until = tokio::time::Instant::now() + wait;
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "GitHub write-back failed; trying again next interval")
                }
            }
        }
    }
}

/// One run: claims due rows and delivers them. `Some(wait)` when GitHub's rate limit
/// stopped it.
pub async fn run(app: &AppContext, gh: &GitHub) -> StoreResult<Option<Duration>> {
    let rows = outbox::claim_due(
        &app.pool,
        BATCH,
        HOLD,
        app.settings.github.github_comment_cooldown,
    )
    .await?;
    let max_attempts = app.settings.github.github_outbox_max_attempts;
    let base = app.settings.github.github_outbox_interval;
    for (i, row) in rows.iter().enumerate() {
        if let Some(wait) = deliver(app, gh, row, max_attempts, base).await? {
            // hand the rest back untried: the limit is GitHub's, not theirs
            for later in &rows[i + 1..] {
                outbox::retry_later(
                    &app.pool,
                    later.id,
                    wait,
                    "waiting for GitHub's rate limit",
                    false,
                    false,
                )
                .await?;
            }
            return Ok(Some(wait));
        }
    }
    crate::metrics::github_outbox_pending(outbox::pending(&app.pool).await?);
    Ok(None)
}

/// One step on GitHub. A comment whose earlier try had no clear answer (`first_try`
/// false) is looked for by its marker before it is posted again.
async fn take_step(
    gh: &GitHub,
    repo: &str,
    number: u64,
    step: &Step,
    outbox_id: i64,
    first_try: bool,
) -> Result<(), GhError> {
    match step {
        Step::Comment(body) => {
            if !first_try
                && gh
                    .has_comment_with(repo, number, &marker(outbox_id))
                    .await?
            {
                return Ok(());
            }
            gh.comment(repo, number, body).await
        }
        Step::AddLabel(label) => {
            gh.add_labels(repo, number, std::slice::from_ref(label))
                .await
        }
        Step::RemoveLabel(label) => gh.remove_label(repo, number, label).await,
    }
}

/// A step GitHub refused: retried later with backoff, or given up for good (an answer
/// no retry can change, or `max_attempts` tries).
async fn failed(
    app: &AppContext,
    row: &OutboxRow,
    step: &Step,
    e: &GhError,
    max_attempts: i32,
    base: Duration,
) -> StoreResult<()> {
    let error = e.to_string();
    // a bad token is fixed by an operator, then delivery goes on: keep trying
    let retryable = e.is_transient() || matches!(e, GhError::Status { status: 401, .. });
    if !retryable || row.attempts >= max_attempts {
        tracing::warn!(outbox = row.id, task = %row.task_id, error = %error, "GitHub write-back given up");
        outbox::give_up(&app.pool, row, &error).await?;
        crate::metrics::github_outbox("gave_up");
    } else {
        // a comment that failed without a clear "no" (a timeout, a 502 from a proxy after
        // GitHub accepted it) may have landed: look before the next try
        let uncertain = matches!(step, Step::Comment(_));
        let delay = backoff(base, row.attempts);
        outbox::retry_later(&app.pool, row.id, delay, &error, uncertain, true).await?;
        crate::metrics::github_outbox("retried");
    }
    Ok(())
}

/// Delivers one row's remaining steps; `Some(wait)` on a rate limit.
async fn deliver(
    app: &AppContext,
    gh: &GitHub,
    row: &OutboxRow,
    max_attempts: i32,
    base: Duration,
) -> StoreResult<Option<Duration>> {
    let Some(event) = Event::parse(&row.event) else {
        outbox::give_up(&app.pool, row, "unknown event").await?;
        return Ok(None);
    };
    let number = u64::try_from(row.issue_number).unwrap_or_default();
    // the PR by number, from a link the pool checked when it was reported
    let host = app.settings.github.web_host();
    let pr = row
        .pr_url
        .as_deref()
        .and_then(|u| pr_link::check(u, PrRule::Any { github_host: &host }).ok())
        .and_then(|l| l.github);
    let steps = plan(&Occurrence {
        outbox_id: row.id,
        event,
        task_id: &row.task_id,
        gh_repo: &row.gh_repo,
        pr: pr.as_ref().map(|(repo, n)| (repo.as_str(), *n)),
        attempt: row.attempt,
        quiet: row.quiet,
    });
    let repo = row.gh_repo.as_str();
    for (i, step) in steps
        .iter()
        .enumerate()
        .skip(row.steps_done.max(0) as usize)
    {
        let first_try = !(row.uncertain && i == row.steps_done as usize);
        let done = take_step(gh, repo, number, step, row.id, first_try).await;
        match done {
            Ok(()) => outbox::step_done(&app.pool, row.id, i as i32 + 1).await?,
            Err(GhError::RateLimited { wait }) => {
                outbox::retry_later(
                    &app.pool,
                    row.id,
                    wait,
                    "waiting for GitHub's rate limit",
                    false,
                    false,
                )
                .await?;
                return Ok(Some(wait));
            }
            Err(e) => {
                failed(app, row, step, &e, max_attempts, base).await?;
                return Ok(None);
            }
        }
    }
    outbox::delivered(&app.pool, row.id).await?;
    crate::metrics::github_outbox("delivered");
    Ok(None)
}

/// `base * 2^(attempts-1)`, at most 30 minutes.
fn backoff(base: Duration, attempts: i32) -> Duration {
    crate::domain::retry::doubling(base, attempts, MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap() {
        let s = Duration::from_secs(2);
        assert_eq!(backoff(s, 1), s);
        assert_eq!(backoff(s, 4), Duration::from_secs(16));
        assert_eq!(backoff(s, 30), MAX_BACKOFF);
    }
}
