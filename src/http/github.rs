//! GitHub closes the loop: `POST /webhooks/github` (signed by GitHub, no admin token),
//! `POST /v1/github/repos/{owner}/{repo}/sync` for pools that missed webhooks, and
//! `GET /v1/admin/github/outbox` to see write-back that is pending or failed.
//!
//! Webhook events: `pull_request` `closed` makes the task with that PR `merged` or
//! `closed`; `opened`/`reopened` go into its history; `issues` `closed` cancels the task
//! imported from the issue; `issues` `labeled` (or `opened`) with the import label imports
//! the issue into the pool repo of the same name; `ping` answers; anything else is 202,
//! ignored and counted. The audit actor is `github`. Every change is idempotent, so a
//! redelivery changes nothing (and one already handled is answered at once).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use super::extract::{ApiQuery, AuthAdmin, RawBody, RepoAdmin};
use crate::app::AppContext;
use crate::domain::github_issue;
use crate::domain::ids::TaskId;
use crate::domain::new_task::NewTask;
use crate::domain::pr_link::{self, PrEvidence, PrRule};
use crate::domain::status::{Report, TaskStatus};
use crate::error::ApiError;
use crate::github::{signature, GhError, GhIssue, GhLabel, GhPull, GhUser, GitHub};
use crate::store::github::{self as gh_store, TaskRef};
use crate::store::tasks::{self, Artifact, Created, StatusResult, StatusUpdate};
use crate::store::{admin_actions, repos};
use crate::wire::admin::TaskRequest;
use crate::wire::github::{OutboxList, OutboxQuery, SyncAnswer, WebhookAnswer};
use crate::wire::ErrorBody;

#[derive(Deserialize)]
struct Repository {
    full_name: String,
}

#[derive(Deserialize)]
struct PullRequest {
    html_url: String,
    #[serde(default)]
    merged: bool,
    user: Option<GhUser>,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize)]
struct PullRequestEvent {
    action: String,
    pull_request: PullRequest,
}

#[derive(Deserialize)]
struct IssuesEvent {
    action: String,
    issue: GhIssue,
    repository: Repository,
    label: Option<GhLabel>,
}

/// What a delivery did: applied (200) or ignored (202), in words.
enum Outcome {
    Applied(String),
    Ignored(String),
}

/// Receive a GitHub webhook delivery.
#[utoipa::path(post, path = "/webhooks/github", tag = "github",
    request_body(content = serde_json::Value, description = "GitHub's event payload, signed in X-Hub-Signature-256"),
    params(("X-GitHub-Event" = String, Header, description = "the event name", min_length = 1, pattern = r"[^\s]"),
           ("X-GitHub-Delivery" = String, Header, description = "the delivery's id (redeliveries repeat it)", min_length = 1, max_length = 200, pattern = r"[^\s]"),
           ("X-Hub-Signature-256" = String, Header, description = "sha256=<HMAC-SHA256 of the body with the webhook secret>", min_length = 1)),
    responses((status = 200, description = "applied, or a delivery already handled", body = WebhookAnswer),
              (status = 202, description = "an event or action the pool ignores (counted)", body = WebhookAnswer),
              (status = 400, body = ErrorBody),
              (status = 401, description = "missing or bad signature: nothing changed", body = ErrorBody),
              (status = 404, description = "webhooks are not configured (OWP_GITHUB_WEBHOOK_SECRET)", body = ErrorBody)))]
pub async fn webhook(
    State(app): State<AppContext>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let gh = &app.settings.github;
    // read as sent, even with bytes beyond ASCII: a header is there or it is not
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let event = header("x-github-event")
        .unwrap_or_default()
        .trim()
        .to_string();
    let delivery = header("x-github-delivery")
        .unwrap_or_default()
        .trim()
        .to_string();
    let Some(signed) = header("x-hub-signature-256") else {
        crate::metrics::github_webhook(&event, "refused");
        return Err(ApiError::Auth(
            "a valid X-Hub-Signature-256 (the webhook secret)",
        ));
    };
    if event.is_empty() || delivery.is_empty() || delivery.chars().count() > 200 {
        return Err(ApiError::Validation(
            "X-GitHub-Event and X-GitHub-Delivery: required headers".into(),
        ));
    }
    if gh.webhook_secrets().next().is_none() {
        return Err(ApiError::NotFound(
            "route (GitHub webhooks are not configured)",
        ));
    }
    if !signature::verify(gh.webhook_secrets(), &body, Some(&signed)) {
        crate::metrics::github_webhook(&event, "refused");
        return Err(ApiError::Auth(
            "a valid X-Hub-Signature-256 (the webhook secret)",
        ));
    }
    if gh_store::delivery_seen(&app.pool, &delivery).await? {
        crate::metrics::github_webhook(&event, "duplicate");
        return Ok(answer(
            StatusCode::OK,
            &event,
            "duplicate delivery: already handled".into(),
        ));
    }
    let outcome = match event.as_str() {
        "ping" => Outcome::Applied("pong".into()),
        "pull_request" => pull_request(&app, super::extract::parse_json(&body)?).await?,
        "issues" => issues(&app, super::extract::parse_json(&body)?).await?,
        other => Outcome::Ignored(format!("ignored: the pool does not read {other} events")),
    };
    let (status, result, text) = match outcome {
        Outcome::Applied(t) => (StatusCode::OK, "applied", t),
        Outcome::Ignored(t) => (StatusCode::ACCEPTED, "ignored", t),
    };
    // recorded after the change: a failure before this lets GitHub's redelivery try again
    gh_store::record_delivery(&app.pool, &delivery, &event, &text).await?;
    crate::metrics::github_webhook(&event, result);
    Ok(answer(status, &event, text))
}

fn answer(status: StatusCode, event: &str, outcome: String) -> (StatusCode, Json<WebhookAnswer>) {
    (
        status,
        Json(WebhookAnswer {
            ok: true,
            event: event.to_string(),
            outcome,
        }),
    )
}

async fn pull_request(app: &AppContext, e: PullRequestEvent) -> Result<Outcome, ApiError> {
    // the same key the task stored when its worker reported the link (domain::pr_link)
    let host = app.settings.github.web_host();
    let Ok(link) = pr_link::check(&e.pull_request.html_url, PrRule::Any { github_host: &host })
    else {
        return Ok(Outcome::Ignored("ignored: not a pull request link".into()));
    };
    let Some(task) = gh_store::task_by_pr(&app.pool, &link.key, &e.pull_request.html_url).await?
    else {
        return Ok(Outcome::Ignored(
            "ignored: no task has this pull request".into(),
        ));
    };
    match e.action.as_str() {
        "closed" => {
            let evidence = PrEvidence {
                author: e.pull_request.user.map(|u| u.login),
                opened_at: e.pull_request.created_at,
            };
            let (report, message) = if e.pull_request.merged {
                (Report::Rest(TaskStatus::Merged), "merged on GitHub")
            } else {
                (Report::Closed, "closed on GitHub without merging")
            };
            decide_pr(app, &task, report, message, &evidence).await
        }
        "opened" | "reopened" => {
            let kind = format!("github_pr_{}", e.action);
            let data = serde_json::json!({ "pr_url": e.pull_request.html_url });
            gh_store::record_task_event(&app.pool, &task, &kind, data).await?;
            Ok(Outcome::Applied(format!("{kind} recorded on {}", task.id)))
        }
        other => Ok(Outcome::Ignored(format!("ignored: pull_request {other}"))),
    }
}

/// GitHub's word on a task's PR, as an admin's `merged`/`closed` report by `github`.
async fn decide_pr(
    app: &AppContext,
    task: &TaskRef,
    report: Report,
    message: &str,
    evidence: &PrEvidence,
) -> Result<Outcome, ApiError> {
    let gh_host = app.settings.github.web_host();
    let update = StatusUpdate {
        task_id: &TaskId::from(task.id.clone()),
        actor: crate::domain::transition::Actor::Admin,
        report,
        lease_id: None,
        message: Some(message),
        artifact: Artifact::default(),
        lease_ttl: app.settings.lease_ttl,
        backoff: app.backoff(),
        audit_actor: "github",
        quality: None,
        on_time_per_point: app.settings.on_time_per_point,
        github_host: &gh_host,
        tier_lease_ttl: &app.settings.tier_lease_ttl,
        max_artifacts_per_lease: app.settings.max_artifacts_per_lease,
        pr_evidence: Some(evidence),
    };
    Ok(match tasks::update_status(&app.pool, &update).await? {
        StatusResult::Updated { .. } => {
            // the repo's review slot (and the area) is free
            app.long_poll.work_ready(1);
            Outcome::Applied(format!("{} {}", report.as_str(), task.id))
        }
        StatusResult::Invalid { from } if from.as_str() == report.as_str() => {
            Outcome::Applied(format!("{} was {} already", task.id, from.as_str()))
        }
        StatusResult::Invalid { from } => {
            Outcome::Ignored(format!("ignored: task {} is {}", task.id, from.as_str()))
        }
        _ => Outcome::Ignored(format!("ignored: task {} cannot take this", task.id)),
    })
}

async fn issues(app: &AppContext, e: IssuesEvent) -> Result<Outcome, ApiError> {
    let key = github_issue::external_id(&e.repository.full_name, e.issue.number);
    match e.action.as_str() {
        "closed" => {
            let tasks = gh_store::tasks_by_external_id(&app.pool, &key).await?;
            let mut cancelled = vec![];
            for t in tasks.iter().filter(|t| !t.status.is_terminal()) {
                if let admin_actions::TaskAction::Done(_) =
                    admin_actions::cancel(&app.pool, &TaskId::from(t.id.clone()), "github").await?
                {
                    cancelled.push(t.id.clone());
                }
            }
            if cancelled.is_empty() {
                return Ok(Outcome::Ignored(format!(
                    "ignored: no open task from {key}"
                )));
            }
            app.long_poll.work_ready(cancelled.len());
            Ok(Outcome::Applied(format!(
                "cancelled {}",
                cancelled.join(", ")
            )))
        }
        "labeled" | "opened" | "reopened" => {
            let labels = import_labels(&app.settings.github);
            let labelled = match e.action.as_str() {
                "labeled" => e.label.as_ref().is_some_and(|l| labels.contains(&l.name())),
                _ => e.issue.labels.iter().any(|l| labels.contains(&l.name())),
            };
            if !labelled {
                return Ok(Outcome::Ignored(format!(
                    "ignored: not labelled {}",
                    labels.join(" or ")
                )));
            }
            let repo = &e.repository.full_name;
            if !repos::exists(&app.pool, repo).await? {
                return Ok(Outcome::Ignored(format!(
                    "ignored: {repo} is not in the pool"
                )));
            }
            let ids = import(app, repo, repo, std::slice::from_ref(&e.issue), "github").await?;
            Ok(Outcome::Applied(match ids.first() {
                Some((id, true)) => format!("imported {key} as {id}"),
                Some((id, false)) => format!("{key} is task {id} already"),
                None => format!("ignored: {key} is a pull request"),
            }))
        }
        other => Ok(Outcome::Ignored(format!("ignored: issues {other}"))),
    }
}

/// Makes tasks of `issues` (pull requests skipped) in `pool_repo`, by the import rule;
/// each task's id and whether this call created it.
async fn import(
    app: &AppContext,
    gh_repo: &str,
    pool_repo: &str,
    issues: &[GhIssue],
    actor: &str,
) -> Result<Vec<(String, bool)>, ApiError> {
    let requests: Vec<TaskRequest> = issues
        .iter()
        .filter(|i| i.pull_request.is_none())
        .map(|i| i.task_request(gh_repo, pool_repo))
        .collect();
    if requests.is_empty() {
        return Ok(vec![]);
    }
    let tasks = requests
        .iter()
        .map(|r| NewTask::check(r.fields()))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = match tasks::insert_tasks(&app.pool, &tasks, actor).await? {
        Created::Ok(ids) => ids,
        Created::UnknownRepo(_) => return Err(ApiError::NotFound("repo")),
        // issues carry no dependencies
        Created::UnknownDependency(_) => return Err(ApiError::NotFound("task")),
    };
    let created = ids.iter().filter(|(_, new)| *new).count();
    crate::metrics::tasks_created(created);
    app.long_poll.work_ready(created);
    Ok(ids.into_iter().map(|(id, new)| (id.0, new)).collect())
}

/// Most PRs one sync looks up (GitHub's rate limit and the request's time bound it).
const SYNC_PRS: i64 = 100;

/// Reconcile a repo with GitHub: its open PRs' real state, and its labelled issues.
#[utoipa::path(post, path = "/v1/github/repos/{owner}/{repo}/sync", tag = "github", security(("admin" = [])),
    params(("owner" = String, Path), ("repo" = String, Path, description = "the pool repo owner/repo, which is also the GitHub repository")),
    responses((status = 200, body = SyncAnswer), (status = 401, body = ErrorBody),
              (status = 404, description = "the repo is not in the pool", body = ErrorBody),
              (status = 503, description = "GitHub's rate limit: retry after it resets", body = ErrorBody)))]
pub async fn sync(
    State(app): State<AppContext>,
    RepoAdmin(admin): RepoAdmin,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Json<SyncAnswer>, ApiError> {
    let repo = format!("{owner}/{name}");
    admin.may(&repo)?;
    if !repos::exists(&app.pool, &repo).await? {
        return Err(ApiError::NotFound("repo"));
    }
    let settings = &app.settings.github;
    let gh = GitHub::new(
        &settings.github_api_url,
        settings.github_token.as_ref().map(|t| t.expose()),
    );
    let mut out = SyncAnswer {
        repo: repo.clone(),
        prs_checked: 0,
        merged: vec![],
        closed: vec![],
        prs_remaining: 0,
        imported: vec![],
        already_imported: 0,
        errors: vec![],
    };
    sync_prs(&app, &gh, &admin.actor, &mut out).await?;
    sync_issues(&app, &gh, &admin.actor, &mut out).await?;
    Ok(Json(out))
}

/// Asks GitHub about the repo's tasks with an open PR (at most `SYNC_PRS`); a PR closed or
/// merged there ends its task as a webhook would have.
async fn sync_prs(
    app: &AppContext,
    gh: &GitHub,
    actor: &str,
    out: &mut SyncAnswer,
) -> Result<(), ApiError> {
    let repo = out.repo.clone();
    let prs = gh_store::open_prs(&app.pool, &repo, SYNC_PRS + 1).await?;
    out.prs_remaining = prs.len().saturating_sub(SYNC_PRS as usize);
    let host = app.settings.github.web_host();
    for (task_id, url) in prs.iter().take(SYNC_PRS as usize) {
        // the PR number from the stored link, the repository always the task's own: a
        // link can never send the sync to ask about another repository
        let number = pr_link::check(url, PrRule::Any { github_host: &host })
            .ok()
            .and_then(|l| l.github)
            .filter(|(linked, _)| linked.eq_ignore_ascii_case(&repo))
            .map(|(_, n)| n);
        let Some(number) = number else {
            out.errors
                .push(format!("{task_id}: {url} is not a pull request of {repo}"));
            continue;
        };
        let pull = match gh.pull(&repo, number).await {
            Ok(p) => p,
            Err(GhError::RateLimited { wait }) => {
                out.errors.push(format!(
                    "GitHub's rate limit: {} s to wait; sync again then",
                    wait.as_secs()
                ));
                out.prs_remaining += prs.len().min(SYNC_PRS as usize) - out.prs_checked;
                break;
            }
            Err(e) => {
                out.errors.push(format!("{task_id}: {e}"));
                continue;
            }
        };
        out.prs_checked += 1;
        if pull.state == "closed" {
            settle(app, task_id, pull, actor, out).await?;
        }
    }
    Ok(())
}

/// Ends a task whose PR GitHub says is closed: `merged`, or back to the queue.
async fn settle(
    app: &AppContext,
    task_id: &str,
    pull: GhPull,
    actor: &str,
    out: &mut SyncAnswer,
) -> Result<(), ApiError> {
    let task = TaskRef {
        id: task_id.to_string(),
        repo: out.repo.clone(),
        status: TaskStatus::PrOpened,
    };
    let (report, what) = if pull.merged {
        (Report::Rest(TaskStatus::Merged), "merged")
    } else {
        (Report::Closed, "closed")
    };
    let message = format!("{what} on GitHub (found by a sync, {actor})");
    let evidence = PrEvidence {
        author: pull.user.map(|u| u.login),
        opened_at: pull.created_at,
    };
    if let Outcome::Applied(_) = decide_pr(app, &task, report, &message, &evidence).await? {
        match report {
            Report::Closed => out.closed.push(task_id.to_string()),
            _ => out.merged.push(task_id.to_string()),
        }
    }
    Ok(())
}

/// The labels that make an issue a task: `OWP_GITHUB_IMPORT_LABEL`'s and v0.1's
/// `pool:ready` (once, when they are the same).
fn import_labels(settings: &crate::config::GithubSettings) -> Vec<&str> {
    let mut labels = vec![settings.github_import_label.as_str()];
    if settings.github_import_label != crate::domain::compat::IMPORT_LABEL {
        labels.push(crate::domain::compat::IMPORT_LABEL);
    }
    labels
}

/// Imports the repo's issues carrying the import label that are not tasks yet.
async fn sync_issues(
    app: &AppContext,
    gh: &GitHub,
    actor: &str,
    out: &mut SyncAnswer,
) -> Result<(), ApiError> {
    let repo = out.repo.clone();
    // one listing per import label; an issue carrying both is imported once
    let mut issues: Vec<crate::github::GhIssue> = vec![];
    for label in import_labels(&app.settings.github) {
        match gh
            .open_issues(&repo, label, std::time::Duration::ZERO, |_| {})
            .await
        {
            Ok(found) => {
                for issue in found {
                    if !issues.iter().any(|i| i.number == issue.number) {
                        issues.push(issue);
                    }
                }
            }
            Err(e) => {
                out.errors.push(format!("issues: {e}"));
                return Ok(());
            }
        }
    }
    let ids = import(app, &repo, &repo, &issues, actor).await?;
    out.already_imported = ids.iter().filter(|(_, new)| !new).count();
    out.imported = ids
        .into_iter()
        .filter(|(_, new)| *new)
        .map(|(id, _)| id)
        .collect();
    Ok(())
}

/// Write-back events by state: `pending`, `failed` (given up) or `delivered`.
#[utoipa::path(get, path = "/v1/admin/github/outbox", tag = "github", security(("admin" = [])),
    params(OutboxQuery),
    responses((status = 200, body = OutboxList), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn outbox(
    State(app): State<AppContext>,
    _admin: AuthAdmin,
    ApiQuery(q): ApiQuery<OutboxQuery>,
) -> Result<Json<OutboxList>, ApiError> {
    let state = q.state.as_deref().unwrap_or("pending");
    if !matches!(state, "pending" | "failed" | "delivered") {
        return Err(ApiError::Validation(
            "state: pending, failed or delivered".into(),
        ));
    }
    let limit = crate::domain::input::int_in("limit", q.limit, 100, 1, 500)?;
    let entries = gh_store::list(&app.pool, state, i64::from(limit)).await?;
    Ok(Json(OutboxList { entries }))
}
