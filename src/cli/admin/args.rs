//! `owp admin`'s commands and flags, as clap reads them.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Args)]
pub struct AdminArgs {
    /// The pool's base URL [default: the config file's, else http://127.0.0.1:8787].
    #[arg(long, env = "OWP_URL", global = true)]
    pub url: Option<String>,
    /// An admin token [default: the config file's].
    #[arg(long, env = "OWP_ADMIN_TOKEN", hide_env_values = true, global = true)]
    pub admin_token: Option<String>,
    /// Config file with `url` and `admin_token` [default: $XDG_CONFIG_HOME/owp/admin.toml].
    #[arg(long, env = "OWP_ADMIN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Repositories and their review budgets.
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Tasks: create, list, inspect, requeue, cancel.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Workers: list, inspect, pause, resume, revoke, trust.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// The pool at a glance; --watch follows it live.
    State {
        #[arg(long)]
        watch: bool,
    },
    /// The audit trail, newest first.
    Audit {
        /// An event type, e.g. task_created.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// Only events at or after this time (RFC 3339) or this long ago (e.g. 2h).
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        actor: Option<String>,
        /// A task id, worker id or repo.
        #[arg(long)]
        target: Option<String>,
        /// Events about this repository (its tasks and settings).
        #[arg(long)]
        repo: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Create tasks from a YAML file (validated as a whole first; idempotent on re-run).
    Import(super::import::ImportArgs),
    /// Create tasks from a GitHub repository's open issues with a label.
    ImportGithub(super::github::GithubArgs),
    /// Notification channels (webhook, Slack, Discord) and their deliveries.
    #[command(subcommand)]
    Notify(super::notify::NotifyCommand),
}

#[derive(Subcommand)]
pub enum RepoCommand {
    /// Register a repository (or update it when it exists).
    Add(RepoFields),
    /// Change a repository's settings; those not given stay as they are.
    Set(RepoFields),
    List,
}

#[derive(Args)]
pub struct RepoFields {
    /// e.g. acme/widgets
    pub repo: String,
    /// Review budget: most tasks open at once (0 pauses the repo).
    #[arg(long)]
    pub max_open_prs: Option<i64>,
    /// One open task per area (true/false).
    #[arg(long)]
    pub area_locks: Option<bool>,
    /// PR links must start with this, e.g. https://github.com/acme/widgets/pull/ ("" removes it).
    #[arg(long)]
    pub pr_url_prefix: Option<String>,
    /// Comment on and label the GitHub issues its tasks came from (true/false; the server
    /// needs OWP_GITHUB_TOKEN).
    #[arg(long)]
    pub github_write_back: Option<bool>,
    /// Most open tasks one worker may have here (0: the server's default).
    #[arg(long)]
    pub max_open_prs_per_worker: Option<i64>,
    /// Only these workers (comma-separated ids) may take work here ("" removes the list).
    #[arg(long, value_delimiter = ',')]
    pub allow_workers: Option<Vec<String>>,
    /// These workers (comma-separated ids) may never take work here ("" clears the list).
    #[arg(long, value_delimiter = ',')]
    pub deny_workers: Option<Vec<String>>,
    /// The lowest trust tier admitted (untrusted, basic, trusted, core, or 0-3).
    #[arg(long)]
    pub min_trust_tier: Option<String>,
    /// An untrusted worker's claim waits for your approval (true/false).
    #[arg(long)]
    pub claim_approval: Option<bool>,
    /// Weight when repositories share the pool's workers (1-1000; default 1).
    #[arg(long)]
    pub fair_share: Option<i32>,
}

impl RepoFields {
    /// The access flags as the request sends them: a list given as "" is empty.
    pub fn access(
        &self,
    ) -> (
        Option<Vec<String>>,
        Option<Vec<String>>,
        Option<serde_json::Value>,
    ) {
        let list = |v: &Option<Vec<String>>| {
            v.as_ref()
                .map(|ids| ids.iter().filter(|i| !i.is_empty()).cloned().collect())
        };
        let tier = self
            .min_trust_tier
            .as_ref()
            .map(|t| match t.parse::<i64>() {
                Ok(n) => serde_json::json!(n),
                Err(_) => serde_json::json!(t),
            });
        (list(&self.allow_workers), list(&self.deny_workers), tier)
    }
}

#[derive(Subcommand)]
pub enum TaskCommand {
    Add(Box<TaskFields>),
    List {
        /// Comma-separated statuses, e.g. ready,leased.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        repo: Option<String>,
        #[arg(long)]
        worker: Option<String>,
        #[arg(long)]
        area: Option<String>,
        /// Tasks that ask for this skill.
        #[arg(long)]
        skill: Option<String>,
        /// Most tasks to show (pages are fetched as needed).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    Show {
        task_id: String,
    },
    /// Back to ready at once, for anyone; a live lease ends.
    Requeue {
        task_id: String,
        #[arg(long)]
        reset_attempts: bool,
    },
    /// Cancel for good; a live lease ends.
    Cancel {
        task_id: String,
    },
    /// Approve the claim awaiting approval (a repo with claim_approval): work may start.
    Approve {
        task_id: String,
    },
    /// Deny the claim awaiting approval: ready again, for anyone but that worker.
    Deny {
        task_id: String,
    },
}

#[derive(Args)]
pub struct TaskFields {
    #[arg(long)]
    pub repo: String,
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub description: Option<String>,
    /// Comma-separated required skills.
    #[arg(long, value_delimiter = ',')]
    pub skills: Vec<String>,
    #[arg(long)]
    pub points: Option<i64>,
    #[arg(long)]
    pub priority: Option<i64>,
    #[arg(long)]
    pub area: Option<String>,
    #[arg(long)]
    pub tier: Option<i64>,
    #[arg(long)]
    pub min_reputation: Option<i64>,
    #[arg(long)]
    pub max_attempts: Option<i64>,
    /// The task's key in its source system (creating it again does nothing).
    #[arg(long)]
    pub external_id: Option<String>,
    /// Not claimable before this time (RFC 3339).
    #[arg(long)]
    pub not_before: Option<String>,
    /// Not claimable until these tasks (comma-separated ids) are merged or completed.
    #[arg(long, value_delimiter = ',')]
    pub depends_on: Option<Vec<String>>,
    /// Only this worker may claim it until --reserved-until.
    #[arg(long, requires = "reserved_until")]
    pub reserved_for: Option<String>,
    /// When the reservation ends (RFC 3339).
    #[arg(long, requires = "reserved_for")]
    pub reserved_until: Option<String>,
}

#[derive(Subcommand)]
pub enum WorkerCommand {
    List {
        #[arg(long)]
        online: bool,
        /// idle, working or paused (the worker's own status).
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    Show {
        worker_id: String,
    },
    /// No new work; its leases stay.
    Pause {
        worker_id: String,
    },
    Resume {
        worker_id: String,
    },
    /// For good: its token stops working, its live leases are requeued.
    Revoke {
        worker_id: String,
    },
    /// Set the trust tier: untrusted, basic, trusted, core (or 0-3).
    Trust {
        worker_id: String,
        tier: String,
        #[arg(long)]
        reason: String,
    },
}
