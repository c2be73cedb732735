//! `owp worker`: a contributor's agent. `register` once (the identity goes to a 0600 config
//! file), then `run --exec CMD` turns each lease into a run of CMD; `status` lists the
//! worker's leases; `simulate` runs fake workers for demos and tests.

pub mod agent;
mod exec;
mod lease_work;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{config_file, output};
use crate::client::{Client, Credentials};
use crate::wire::workers::RegisterRequest;
use agent::{Agent, Cadence, Options, Simulation, Stop, Work};

#[derive(Args)]
pub struct WorkerArgs {
    #[command(subcommand)]
    pub command: WorkerCommand,
}

#[derive(Subcommand)]
pub enum WorkerCommand {
    /// Register a worker with a pool and keep its identity in a config file (mode 0600).
    Register(RegisterArgs),
    /// Take leases and run a shell command for each, until SIGINT or SIGTERM.
    Run(RunArgs),
    /// List the worker's live leases.
    Status(StatusArgs),
    /// Change the worker's skills, capacity or repositories on the pool, without
    /// registering again (only what is given changes).
    Update(UpdateArgs),
    /// Register and run simulated workers (no commands run): for demos and tests.
    Simulate(SimulateArgs),
}

/// What `register` keeps: enough to act as the worker later.
#[derive(Serialize, Deserialize)]
pub struct WorkerConfig {
    pub url: String,
    pub worker_id: String,
    pub token: String,
    pub name: String,
    pub max_concurrent_tasks: u32,
    pub heartbeat_interval_seconds: u64,
    pub poll_interval_seconds: u64,
    pub lease_ttl_seconds: u64,
}

#[derive(Args)]
pub struct ConfigPath {
    /// The worker's config file [default: $XDG_CONFIG_HOME/owp/worker.toml].
    #[arg(long, env = "OWP_WORKER_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ConfigPath {
    fn path(&self) -> anyhow::Result<PathBuf> {
        match &self.config {
            Some(p) => Ok(p.clone()),
            None => config_file::default_path("worker.toml"),
        }
    }

    fn load(&self) -> anyhow::Result<(WorkerConfig, Client)> {
        let cfg: WorkerConfig = config_file::read(&self.path()?, "owp worker register")?;
        let client = Client::new(&cfg.url, Credentials::Worker(cfg.token.clone()))?;
        Ok((cfg, client))
    }
}

#[derive(Args)]
pub struct RegisterArgs {
    /// The pool's base URL.
    #[arg(long, env = "OWP_URL")]
    pub url: String,
    #[arg(long)]
    pub name: String,
    #[arg(long)]
    pub github_handle: Option<String>,
    /// Comma-separated skill tags, e.g. rust,sql.
    #[arg(long, value_delimiter = ',')]
    pub skills: Vec<String>,
    /// Points of work held at once (1-1000).
    #[arg(long, default_value_t = 5)]
    pub capacity: i64,
    /// Leases held at once (1-100).
    #[arg(long, default_value_t = 2)]
    pub max_concurrent: i64,
    /// When the pool admits only workers that have it.
    #[arg(long, env = "OWP_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,
    /// Replace an existing config file (its worker keeps existing on the server).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub config: ConfigPath,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RunArgs {
    /// The command run (by `sh -c`) once per lease; the task is in OWP_* variables and as
    /// JSON on stdin. Exit 0 reports `completed`, or `pr_opened` when it wrote the PR's
    /// link into the file $OWP_PR_URL_FILE; any other exit reports `failed` with the end of
    /// its output.
    #[arg(long)]
    pub exec: String,
    /// Leases worked on at once [default: the worker's max_concurrent_tasks].
    #[arg(long)]
    pub parallel: Option<usize>,
    /// After SIGINT/SIGTERM, how long running commands may go on before they are ended
    /// and their leases released (a second signal ends them at once).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// How often a running lease is renewed [default: a third of the lease TTL, at most 10m].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub renew_every: Option<Duration>,
    /// Long-poll wait (0-60 s); 0 polls at the server's interval.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub wait: Duration,
    /// Stop after this long with no lease (for scripts and CI).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,
    #[command(flatten)]
    pub config: ConfigPath,
}

#[derive(Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub config: ConfigPath,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct UpdateArgs {
    /// Comma-separated skill tags (they replace the current ones).
    #[arg(long, value_delimiter = ',')]
    pub skills: Option<Vec<String>>,
    /// Points of work held at once (1-1000).
    #[arg(long)]
    pub capacity: Option<i64>,
    /// Leases held at once (1-100).
    #[arg(long)]
    pub max_concurrent: Option<i64>,
    /// Take work only from these repositories (comma-separated); "" from any again.
    #[arg(long, value_delimiter = ',')]
    pub repos: Option<Vec<String>>,
    #[command(flatten)]
    pub config: ConfigPath,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SimulateArgs {
    #[arg(long, env = "OWP_URL")]
    pub url: String,
    /// How many simulated workers to register and run.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    #[arg(long, value_delimiter = ',')]
    pub skills: Vec<String>,
    #[arg(long, default_value_t = 5)]
    pub capacity: i64,
    #[arg(long, default_value_t = 2)]
    pub max_concurrent: i64,
    /// Shortest and longest time a simulated task takes.
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub min_time: Duration,
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub max_time: Duration,
    /// Share of tasks that fail (0-1).
    #[arg(long, default_value_t = 0.1)]
    pub fail_rate: f64,
    /// Share of successes that open a PR instead of completing (0-1).
    #[arg(long, default_value_t = 0.5)]
    pub pr_rate: f64,
    #[arg(long, env = "OWP_REGISTRATION_TOKEN", hide_env_values = true)]
    pub registration_token: Option<String>,
    /// Stop after this long with no lease.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub exit_when_idle: Option<Duration>,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    match args.command {
        WorkerCommand::Register(a) => register(a).await,
        WorkerCommand::Run(a) => run_exec(a).await,
        WorkerCommand::Status(a) => status(a).await,
        WorkerCommand::Update(a) => update(a).await,
        WorkerCommand::Simulate(a) => simulate(a).await,
    }
}

async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    let path = args.config.path()?;
    if path.exists() && !args.force {
        anyhow::bail!(
            "{} exists (a registered worker): pass --force to replace it, or --config for another file",
            path.display()
        );
    }
    let client = Client::new(&args.url, Credentials::None)?;
    let req = RegisterRequest {
        name: args.name.clone(),
        github_handle: args.github_handle.clone(),
        skills: Some(args.skills.clone()),
        capacity_points: Some(args.capacity),
        max_concurrent_tasks: Some(args.max_concurrent),
    };
    let answer = client
        .register(&req, args.registration_token.as_deref())
        .await
        .map_err(|e| match e.code() {
            Some("forbidden") => anyhow::anyhow!(
                "{e}\nthe pool does not admit new workers without a registration token: ask its maintainers for one (--registration-token)"
            ),
            _ => anyhow::anyhow!("{e}"),
        })?;
    let cfg = WorkerConfig {
        url: client.base().to_string(),
        worker_id: answer.worker_id.clone(),
        token: answer.token,
        name: args.name,
        max_concurrent_tasks: u32::try_from(args.max_concurrent).unwrap_or(1),
        heartbeat_interval_seconds: answer.heartbeat_interval_seconds,
        poll_interval_seconds: answer.poll_interval_seconds,
        lease_ttl_seconds: answer.lease_ttl_seconds,
    };
    config_file::write_private(&path, &cfg)?;
    if args.json {
        return output::json(&serde_json::json!({
            "worker_id": cfg.worker_id, "config": path,
        }));
    }
    println!("registered worker {} with {}", cfg.worker_id, cfg.url);
    println!("identity and token saved to {} (mode 0600)", path.display());
    println!("next: owp worker run --exec 'your-agent-command'");
    Ok(())
}

fn cadence(cfg: &WorkerConfig) -> Cadence {
    Cadence {
        heartbeat: Duration::from_secs(cfg.heartbeat_interval_seconds.max(1)),
        poll: Duration::from_secs(cfg.poll_interval_seconds.max(1)),
        lease_ttl: Duration::from_secs(cfg.lease_ttl_seconds.max(3)),
    }
}

async fn run_exec(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.wait <= Duration::from_secs(60),
        "--wait is at most 60s"
    );
    let (cfg, client) = args.config.load()?;
    let cadence = cadence(&cfg);
    let renew_every = args
        .renew_every
        .unwrap_or_else(|| default_renewal(cadence.lease_ttl));
    let agent = Agent {
        client,
        worker_id: cfg.worker_id.clone(),
        cadence,
        options: Options {
            work: Work::Shell(args.exec),
            slots: args
                .parallel
                .unwrap_or(cfg.max_concurrent_tasks as usize)
                .max(1),
            grace: args.grace,
            renew_every,
            wait: args.wait,
            exit_when_idle: args.exit_when_idle,
        },
    };
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    tokio::spawn(stop_on_signals(stop_tx));
    tracing::info!(worker = %cfg.worker_id, url = %cfg.url, "worker running; Ctrl-C stops taking work");
    let tally = agent.run(stop_rx).await?;
    println!("worker {} stopped: {}", cfg.worker_id, tally.summary());
    Ok(())
}

/// A third of the TTL (so two renewals may fail before the lease is at risk), at most 10 min.
fn default_renewal(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// The first SIGINT/SIGTERM drains (running work may finish), the second stops at once.
async fn stop_on_signals(stop: watch::Sender<Stop>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for signals");
        return;
    };
    for next in [Stop::Drain, Stop::Now] {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!(?next, "signal received");
        let _ = stop.send(next);
    }
    // keep the sender (and so the agent's view of it) alive until the process ends
    std::future::pending::<()>().await;
}

async fn status(args: StatusArgs) -> anyhow::Result<()> {
    let (cfg, client) = args.config.load()?;
    let answer = client.poll(Some(0), None).await?;
    if args.json {
        return output::json(&answer);
    }
    println!("worker {} at {}", cfg.worker_id, cfg.url);
    let mut table = output::Table::new(&["task", "status", "repo", "points", "expires", "title"]);
    for l in &answer.leases {
        table.row(vec![
            l.task_id.clone(),
            l.status.as_str().to_string(),
            l.repo.clone(),
            l.estimate_points.to_string(),
            output::time(&l.lease_expires_at),
            l.title.clone(),
        ]);
    }
    table.print();
    Ok(())
}

async fn update(args: UpdateArgs) -> anyhow::Result<()> {
    let (mut cfg, client) = args.config.load()?;
    let req = crate::wire::workers::WorkerPatch {
        skills: args.skills,
        capacity_points: args.capacity,
        max_concurrent_tasks: args.max_concurrent,
        repos: args
            .repos
            .map(|r| r.into_iter().filter(|r| !r.is_empty()).collect()),
    };
    let now = client.update_me(&req).await?;
    // `run` takes as many leases at once as the config says
    let slots = u32::try_from(now.max_concurrent_tasks).unwrap_or(1);
    if slots != cfg.max_concurrent_tasks {
        cfg.max_concurrent_tasks = slots;
        config_file::write_private(&args.config.path()?, &cfg)?;
    }
    if args.json {
        return output::json(&now);
    }
    let repos = now.repos.map_or("any".to_string(), |r| r.join(","));
    println!(
        "worker {}: skills {}, capacity {}, {} at once, repos {repos}",
        now.worker_id,
        now.skills.join(","),
        now.capacity_points,
        now.max_concurrent_tasks
    );
    Ok(())
}

/// Registers `n` workers and runs them until a signal or `exit_when_idle`; the tallies.
pub async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let client = Client::new(&args.url, Credentials::None)?;
    let (stop_tx, stop_rx) = watch::channel(Stop::Run);
    tokio::spawn(stop_on_signals(stop_tx));
    let spec = SimulatedFleet {
        workers: args.workers,
        name_prefix: "simulated".into(),
        skills: args.skills,
        capacity: args.capacity,
        max_concurrent: args.max_concurrent,
        simulation: Simulation {
            min: args.min_time,
            max: args.max_time,
            fail_rate: args.fail_rate,
            pr_rate: args.pr_rate,
        },
        registration_token: args.registration_token,
        exit_when_idle: args.exit_when_idle,
    };
    let tallies = spec.run(&client, stop_rx).await?;
    for (id, t) in tallies {
        println!("{id}: {}", t.summary());
    }
    Ok(())
}

/// Fake workers of one kind, as `owp worker simulate` and `owp demo` run them.
pub struct SimulatedFleet {
    pub workers: usize,
    pub name_prefix: String,
    pub skills: Vec<String>,
    pub capacity: i64,
    pub max_concurrent: i64,
    pub simulation: Simulation,
    pub registration_token: Option<String>,
    pub exit_when_idle: Option<Duration>,
}

impl SimulatedFleet {
    /// Registers the workers, runs them until `stop`, and answers each one's tally.
    pub async fn run(
        self,
        client: &Client,
        stop: watch::Receiver<Stop>,
    ) -> anyhow::Result<Vec<(String, agent::Tally)>> {
        let mut agents = vec![];
        for i in 0..self.workers {
            let req = RegisterRequest {
                name: format!("{}-{}", self.name_prefix, i + 1),
                github_handle: None,
                skills: Some(self.skills.clone()),
                capacity_points: Some(self.capacity),
                max_concurrent_tasks: Some(self.max_concurrent),
            };
            let r = client
                .register(&req, self.registration_token.as_deref())
                .await
                .context("registering a simulated worker")?;
            let cadence = Cadence {
                heartbeat: Duration::from_secs(r.heartbeat_interval_seconds.max(1)),
                poll: Duration::from_secs(r.poll_interval_seconds.max(1)),
                lease_ttl: Duration::from_secs(r.lease_ttl_seconds.max(3)),
            };
            let agent = Agent {
                client: client.as_caller(Credentials::Worker(r.token)),
                worker_id: r.worker_id.clone(),
                cadence,
                options: Options {
                    work: Work::Simulated(self.simulation.clone()),
                    slots: usize::try_from(self.max_concurrent).unwrap_or(1).max(1),
                    grace: Duration::from_secs(10),
                    renew_every: default_renewal(cadence.lease_ttl),
                    wait: Duration::from_secs(10),
                    exit_when_idle: self.exit_when_idle,
                },
            };
            let stop = stop.clone();
            agents.push(tokio::spawn(async move {
                let id = agent.worker_id.clone();
                agent.run(stop).await.map(|t| (id, t))
            }));
        }
        let mut out = vec![];
        for a in agents {
            out.push(a.await??);
        }
        Ok(out)
    }
}
