//! `owp admin`: a maintainer's tool over the admin API. The server and token come from
//! flags, else `OWP_URL` / `OWP_ADMIN_TOKEN`, else `$XDG_CONFIG_HOME/owp/admin.toml`
//! (`url`, `admin_token`). Tables by default, `--json` for scripts.

mod args;
mod github;
mod import;
mod notify;
mod show;

pub use args::*;
pub use notify::NotifyCommand;

pub use import::send as send_tasks;

use serde::Deserialize;

use super::{config_file, output};
use crate::client::{Client, Credentials};
use crate::wire::actions::TrustTierRequest;
use crate::wire::admin::{RepoRequest, TaskRequest};
use crate::wire::views::{AuditQuery, TaskListQuery, WorkerListQuery};

#[derive(Deserialize, Default)]
struct AdminFile {
    url: Option<String>,
    admin_token: Option<String>,
}

const DEFAULT_URL: &str = "http://127.0.0.1:8787";

impl AdminArgs {
    fn client(&self) -> anyhow::Result<Client> {
        let path = match &self.config {
            Some(p) => p.clone(),
            None => config_file::default_path("admin.toml")?,
        };
        let file: AdminFile = config_file::read_optional(&path)?.unwrap_or_default();
        let url = self
            .url
            .clone()
            .or(file.url)
            .unwrap_or_else(|| DEFAULT_URL.into());
        let token = self
            .admin_token
            .clone()
            .or(file.admin_token)
            .ok_or_else(|| {
                anyhow::anyhow!(
                "no admin token: pass --admin-token, set OWP_ADMIN_TOKEN, or put admin_token in {}",
                path.display()
            )
            })?;
        Ok(Client::new(&url, Credentials::Admin(token))?)
    }
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = args.client()?;
    let json = args.json;
    match args.command {
        AdminCommand::Repo(c) => repo(&client, c, json).await,
        AdminCommand::Task(c) => task(&client, c, json).await,
        AdminCommand::Worker(c) => worker(&client, c, json).await,
        AdminCommand::State { watch } => show::state(&client, watch, json).await,
        AdminCommand::Audit {
            event_type,
            since,
            actor,
            target,
            repo,
            limit,
        } => {
            let q = AuditQuery {
                event_type,
                actor,
                target,
                repo,
                since: since.as_deref().map(parse_since).transpose()?,
                limit: Some(limit),
                ..AuditQuery::default()
            };
            let list = client.audit(&q).await?;
            if json {
                return output::json(&list);
            }
            show::audit(&list);
            Ok(())
        }
        AdminCommand::Import(a) => import::run(&client, a, json).await,
        AdminCommand::ImportGithub(a) => github::run(&client, a, json).await,
        AdminCommand::Notify(c) => notify::run(&client, c, json).await,
    }
}

/// RFC 3339, or a duration ago (`90m`, `2h`, `7d`).
fn parse_since(s: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        anyhow::anyhow!("--since {s:?}: give a time (2026-11-26T10:00:00Z) or a duration ago (2h)")
    })?;
    Ok(chrono::Utc::now() - chrono::Duration::from_std(ago)?)
}

async fn repo(client: &Client, c: RepoCommand, json: bool) -> anyhow::Result<()> {
    match c {
        RepoCommand::List => {
            let list = client.list_repos().await?;
            if json {
                return output::json(&list);
            }
            show::repos(&list);
            Ok(())
        }
        RepoCommand::Add(f) => {
            let (allow_workers, deny_workers, min_trust_tier) = f.access();
            let req = RepoRequest {
                repo: f.repo.clone(),
                max_open_prs: f.max_open_prs,
                area_locks_enabled: f.area_locks,
                pr_url_prefix: f.pr_url_prefix,
                github_write_back: f.github_write_back,
                max_open_prs_per_worker: f.max_open_prs_per_worker,
                allow_workers,
                deny_workers,
                min_trust_tier,
                claim_approval: f.claim_approval,
                fair_share: f.fair_share,
            };
            let created = client.upsert_repo(&req).await?;
            done(
                json,
                serde_json::json!({"repo": f.repo, "created": created}),
                || {
                    format!(
                        "repo {} {}",
                        f.repo,
                        if created { "created" } else { "updated" }
                    )
                },
            )
        }
        RepoCommand::Set(f) => {
            // the API sets every field it is sent: start from the repo as it is
            let list = client.list_repos().await?;
            let Some(now) = list.repositories.iter().find(|r| r.repo == f.repo) else {
                // a scoped token lists only its own repositories, so say both
                anyhow::bail!(
                    "repo {} is not in the pool, or not among the repositories this token \
                     manages: `owp admin repo add {}` first, with a token that may",
                    f.repo,
                    f.repo
                );
            };
            let (allow_workers, deny_workers, min_trust_tier) = f.access();
            let req = RepoRequest {
                repo: f.repo.clone(),
                max_open_prs: Some(f.max_open_prs.unwrap_or(i64::from(now.max_open_prs))),
                area_locks_enabled: Some(f.area_locks.unwrap_or(now.area_locks_enabled)),
                pr_url_prefix: f.pr_url_prefix,
                github_write_back: f.github_write_back,
                max_open_prs_per_worker: f.max_open_prs_per_worker,
                allow_workers,
                deny_workers,
                min_trust_tier,
                claim_approval: f.claim_approval,
                fair_share: f.fair_share,
            };
            client.upsert_repo(&req).await?;
            done(
                json,
                serde_json::json!({"repo": f.repo, "updated": true}),
                || format!("repo {} updated", f.repo),
            )
        }
    }
}

async fn task(client: &Client, c: TaskCommand, json: bool) -> anyhow::Result<()> {
    match c {
        TaskCommand::Add(f) => add_task(client, *f, json).await,
        TaskCommand::List {
            status,
            repo,
            worker,
            area,
            skill,
            limit,
        } => {
            let q = TaskListQuery {
                status,
                repo,
                worker_id: worker,
                area,
                skill,
                limit: Some(limit.clamp(1, 200) as i64),
                cursor: None,
            };
            let tasks = list_tasks(client, q, limit).await?;
            if json {
                return output::json(&tasks);
            }
            show::tasks(&tasks);
            Ok(())
        }
        TaskCommand::Show { task_id } => {
            let t = client.task(&task_id).await?;
            if json {
                return output::json(&t);
            }
            show::task(&t);
            Ok(())
        }
        TaskCommand::Requeue {
            task_id,
            reset_attempts,
        } => {
            let r = client.requeue(&task_id, reset_attempts).await?;
            done(json, &r, || {
                format!("task {} is {}", r.task_id, r.status.as_str())
            })
        }
        TaskCommand::Cancel { task_id } => {
            let r = client.cancel(&task_id).await?;
            done(json, &r, || {
                format!("task {} is {}", r.task_id, r.status.as_str())
            })
        }
        TaskCommand::Approve { task_id } => {
            let r = client.decide_claim(&task_id, "approve").await?;
            done(json, &r, || format!("claim on task {} approved", r.task_id))
        }
        TaskCommand::Deny { task_id } => {
            let r = client.decide_claim(&task_id, "deny").await?;
            done(json, &r, || {
                format!(
                    "claim on task {} denied: it is {}",
                    r.task_id,
                    r.status.as_str()
                )
            })
        }
    }
}

async fn add_task(client: &Client, f: TaskFields, json: bool) -> anyhow::Result<()> {
    let req = TaskRequest {
        repo: f.repo,
        title: f.title,
        description: f.description,
        required_skills: Some(f.skills),
        estimate_points: f.points,
        priority: f.priority,
        area: f.area,
        tier: f.tier,
        min_reputation: f.min_reputation,
        max_attempts: f.max_attempts,
        external_id: f.external_id,
        not_before: f.not_before,
        depends_on: f.depends_on,
        reserved_for: f.reserved_for,
        reserved_until: f.reserved_until,
    };
    let created = client.create_task(&req).await?;
    if json {
        return output::json(&created);
    }
    match created.created {
        true => println!("created task {}", created.task_id),
        false => println!(
            "task {} exists with that external id: nothing created",
            created.task_id
        ),
    }
    Ok(())
}

/// Up to `limit` tasks, page after page.
async fn list_tasks(
    client: &Client,
    mut q: TaskListQuery,
    limit: usize,
) -> anyhow::Result<Vec<crate::wire::views::TaskView>> {
    let mut tasks = vec![];
    loop {
        let page = client.list_tasks(&q).await?;
        tasks.extend(page.tasks);
        match page.next_cursor {
            Some(c) if tasks.len() < limit => q.cursor = Some(c),
            _ => break,
        }
    }
    tasks.truncate(limit);
    Ok(tasks)
}

async fn worker(client: &Client, c: WorkerCommand, json: bool) -> anyhow::Result<()> {
    match c {
        WorkerCommand::List {
            online,
            status,
            limit,
        } => {
            let mut q = WorkerListQuery {
                online: online.then_some(true),
                status: status
                    .as_deref()
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| anyhow::anyhow!("--status: idle, working or paused"))?,
                limit: Some(limit.clamp(1, 200) as i64),
                cursor: None,
            };
            let mut workers = vec![];
            loop {
                let page = client.list_workers(&q).await?;
                workers.extend(page.workers);
                match page.next_cursor {
                    Some(c) if workers.len() < limit => q.cursor = Some(c),
                    _ => break,
                }
            }
            workers.truncate(limit);
            if json {
                return output::json(&workers);
            }
            show::workers(&workers);
            Ok(())
        }
        WorkerCommand::Show { worker_id } => {
            let w = client.worker(&worker_id).await?;
            if json {
                return output::json(&w);
            }
            show::worker(&w);
            Ok(())
        }
        WorkerCommand::Pause { worker_id } => {
            act(client, &worker_id, "pause", "paused", json).await
        }
        WorkerCommand::Resume { worker_id } => {
            act(client, &worker_id, "resume", "resumed", json).await
        }
        WorkerCommand::Revoke { worker_id } => {
            act(client, &worker_id, "revoke", "revoked", json).await
        }
        WorkerCommand::Trust {
            worker_id,
            tier,
            reason,
        } => {
            let tier = match tier.parse::<i64>() {
                Ok(level) => serde_json::json!(level),
                Err(_) => serde_json::json!(tier),
            };
            let r = client
                .set_trust_tier(&worker_id, &TrustTierRequest { tier, reason })
                .await?;
            done(json, &r, || {
                format!(
                    "worker {} is {} (level {})",
                    r.worker_id,
                    r.trust_tier.as_str(),
                    r.trust_level
                )
            })
        }
    }
}

async fn act(
    client: &Client,
    worker_id: &str,
    action: &str,
    past: &str,
    json: bool,
) -> anyhow::Result<()> {
    let r = client.worker_action(worker_id, action).await?;
    done(json, &r, || format!("worker {} {past}", r.worker_id))
}

/// The JSON answer, or a line for a person.
fn done(
    json: bool,
    value: impl serde::Serialize,
    line: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        return output::json(&value);
    }
    println!("{}", line());
    Ok(())
}
