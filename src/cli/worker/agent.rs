//! The worker agent behind `owp worker run` and `owp worker simulate`: heartbeats at the
//! server's cadence, long-polls for leases up to its free slots, runs each lease (a shell
//! command or a simulation), renews the lease while the work runs, reports the outcome,
//! and on shutdown lets running work finish for a grace period, then releases the rest.

use super::lease_work::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::retry::Backoff;
use crate::client::Client;
use crate::wire::tasks::StatusRequest;
use crate::wire::work::Lease;
use crate::wire::workers::HeartbeatRequest;

/// What the agent does with a lease.
pub enum Work {
    /// `sh -c` this, once per lease.
    Shell(String),
    /// Pretend: take a while, then succeed (sometimes with a PR) or fail.
    Simulated(Simulation),
}

#[derive(Clone, Debug)]
pub struct Simulation {
    pub min: Duration,
    pub max: Duration,
    /// Share of leases that fail (0-1).
    pub fail_rate: f64,
    /// Share of successes that open a PR rather than complete (0-1).
    pub pr_rate: f64,
}

/// The server's cadence (from registration).
#[derive(Clone, Copy, Debug)]
pub struct Cadence {
    pub heartbeat: Duration,
    pub poll: Duration,
    pub lease_ttl: Duration,
}

pub struct Options {
    pub work: Work,
    /// Leases worked on at once.
    pub slots: usize,
    /// How long running work may go on after a stop before it is ended and released.
    pub grace: Duration,
    /// How often a running lease is renewed.
    pub renew_every: Duration,
    /// Long-poll wait; zero polls at the server's interval instead.
    pub wait: Duration,
    /// End the run after this long without any lease.
    pub exit_when_idle: Option<Duration>,
}

/// What the caller wants: go on, finish what runs and stop, or stop now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Run,
    Drain,
    Now,
}

/// Outcomes of one run, by what was reported.
#[derive(Default, Debug)]
pub struct Tally {
    pub completed: AtomicU64,
    pub pr_opened: AtomicU64,
    pub failed: AtomicU64,
    pub released: AtomicU64,
    pub lost: AtomicU64,
}

impl Tally {
    pub fn summary(&self) -> String {
        format!(
            "{} completed, {} PRs opened, {} failed, {} released, {} lost",
            self.completed.load(Ordering::Relaxed),
            self.pr_opened.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.released.load(Ordering::Relaxed),
            self.lost.load(Ordering::Relaxed)
        )
    }
}

pub struct Agent {
    pub client: Client,
    pub worker_id: String,
    pub cadence: Cadence,
    pub options: Options,
}

pub(super) struct Shared {
    pub(super) client: Client,
    pub(super) worker_id: String,
    pub(super) options: Options,
    pub(super) tally: Tally,
    pub(super) running: AtomicUsize,
}

/// Reports worth retrying this many times before giving up on one.
pub(super) const REPORT_TRIES: u32 = 8;

impl Agent {
    /// Runs until `stop` says so (or, with `exit_when_idle`, until idle), and answers what
    /// was done. Fails when the server refuses the worker's token (revoked or rotated).
    pub async fn run(self, mut stop: watch::Receiver<Stop>) -> anyhow::Result<Tally> {
        let cadence = self.cadence;
        let shared = Arc::new(Shared {
            client: self.client,
            worker_id: self.worker_id,
            options: self.options,
            tally: Tally::default(),
            running: AtomicUsize::new(0),
        });
        let (abort_tx, abort_rx) = watch::channel(false);
        let heartbeats = tokio::spawn(heartbeat_loop(
            shared.clone(),
            cadence.heartbeat,
            stop.clone(),
        ));
        let outcome = poll_loop(&shared, cadence, &mut stop, abort_rx).await;
        let mut jobs = match outcome {
            Ok(jobs) => jobs,
            Err(e) => {
                heartbeats.abort();
                return Err(e);
            }
        };
        drain(&shared, &mut jobs, &mut stop, &abort_tx).await;
        heartbeats.abort();
        release_leftovers(&shared).await;
        Arc::try_unwrap(shared)
            .map(|s| s.tally)
            .map_err(|_| anyhow::anyhow!("agent state still shared after the run"))
    }
}

/// The leases being worked on, by task id.
#[derive(Default)]
pub(super) struct Jobs {
    pub(super) set: JoinSet<()>,
    pub(super) tasks: HashMap<tokio::task::Id, String>,
}

impl Jobs {
    fn contains(&self, task_id: &str) -> bool {
        self.tasks.values().any(|t| t == task_id)
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    fn spawn(
        &mut self,
        task_id: String,
        job: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let handle = self.set.spawn(job);
        self.tasks.insert(handle.id(), task_id);
    }

    fn forget(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "a job ended abnormally");
                e.id()
            }
        };
        self.tasks.remove(&id);
    }

    /// Forgets jobs that ended, without waiting.
    fn reap(&mut self) {
        while let Some(done) = self.set.try_join_next_with_id() {
            self.forget(done);
        }
    }

    /// Waits for the next job to end; None when none runs.
    async fn next(&mut self) -> Option<()> {
        let done = self.set.join_next_with_id().await?;
        self.forget(done);
        Some(())
    }
}

pub(super) async fn poll_loop(
    shared: &Arc<Shared>,
    cadence: Cadence,
    stop: &mut watch::Receiver<Stop>,
    abort: watch::Receiver<bool>,
) -> anyhow::Result<Jobs> {
    let mut jobs = Jobs::default();
    let mut errors = 0u32;
    let mut last_work = Instant::now();
    let backoff = Backoff::default();
    loop {
        if *stop.borrow() != Stop::Run {
            return Ok(jobs);
        }
        jobs.reap();
        if !jobs.is_empty() {
            last_work = Instant::now();
        }
        if let Some(idle) = shared.options.exit_when_idle {
            if jobs.is_empty() && last_work.elapsed() >= idle {
                tracing::info!("no work for {idle:?}: stopping");
                return Ok(jobs);
            }
        }
        let free = shared.options.slots.saturating_sub(jobs.len());
        if free == 0 {
            // every slot busy: wait for one to free up
            tokio::select! {
                _ = jobs.next() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // never hold a poll past the idle deadline
        let wait = until_idle(shared, last_work, shared.options.wait);
        let asked = Instant::now();
        let answer = tokio::select! {
            r = shared.client.poll(Some(free as u32), Some(wait)) => r,
            // a finished job frees a slot: poll again for more
            Some(()) = jobs.next(), if !jobs.is_empty() => continue,
            _ = stop.changed() => continue,
        };
        let leases = match answer {
            Ok(a) => {
                errors = 0;
                a.leases
            }
            Err(e) if e.code() == Some("auth_error") => {
                return Err(anyhow::anyhow!("{e}"));
            }
            Err(e) => {
                errors += 1;
                let pause = if e.is_transient() {
                    backoff.pause(errors, &e)
                } else {
                    jittered(cadence.poll)
                };
                tracing::warn!(error = %e, pause = ?pause, "poll failed");
                sleep_or_stop(pause, stop).await;
                continue;
            }
        };
        if start_new(shared, &mut jobs, leases, &abort) > 0 {
            last_work = Instant::now();
        } else if asked.elapsed() < Duration::from_secs(1) {
            // answered at once with nothing new (no free capacity server-side, or no
            // long polls): the protocol's cadence, with jitter, unless a job ends first
            // (a freed slot) or the idle deadline comes sooner
            let pause = until_idle(shared, last_work, jittered(cadence.poll));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                Some(()) = jobs.next(), if !jobs.is_empty() => {}
                _ = stop.changed() => {}
            }
        }
    }
}

/// Starts a job for each lease not being worked on yet; how many started.
fn start_new(
    shared: &Arc<Shared>,
    jobs: &mut Jobs,
    leases: Vec<Lease>,
    abort: &watch::Receiver<bool>,
) -> usize {
    let mut started = 0;
    for lease in leases {
        if !jobs.contains(&lease.task_id) {
            started += 1;
            let shared = shared.clone();
            let abort = abort.clone();
            jobs.spawn(lease.task_id.clone(), async move {
                shared.running.fetch_add(1, Ordering::Relaxed);
                work_on(&shared, lease, abort).await;
                shared.running.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }
    started
}

/// `d`, cut short so it never runs past the idle deadline (`--exit-when-idle`).
fn until_idle(shared: &Shared, last_work: Instant, d: Duration) -> Duration {
    match shared.options.exit_when_idle {
        Some(idle) => d.min(idle.saturating_sub(last_work.elapsed())),
        None => d,
    }
}

/// After a stop: running work gets `grace` to finish; then it is ended and released.
pub(super) async fn drain(
    shared: &Arc<Shared>,
    jobs: &mut Jobs,
    stop: &mut watch::Receiver<Stop>,
    abort: &watch::Sender<bool>,
) {
    if jobs.is_empty() {
        return;
    }
    tracing::info!(running = jobs.len(), grace = ?shared.options.grace, "stopping: letting running work finish");
    let deadline = tokio::time::Instant::now() + shared.options.grace;
    loop {
        if *stop.borrow() == Stop::Now {
            break;
        }
        tokio::select! {
            next = jobs.next() => if next.is_none() { return },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = stop.changed() => {}
        }
    }
    tracing::info!(
        running = jobs.len(),
        "ending running work and releasing its leases"
    );
    let _ = abort.send(true);
    while jobs.next().await.is_some() {}
}

/// Leases the server granted that the agent never started (a poll cut short by the stop):
/// hand them back so they do not wait out their TTL.
pub(super) async fn release_leftovers(shared: &Shared) {
    let leases = match shared.client.poll(Some(0), None).await {
        Ok(a) => a.leases,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list leases to release at shutdown");
            return;
        }
    };
    for lease in leases {
        report_outcome(shared, &lease, StatusRequest::to("released"), "released").await;
    }
}

pub(super) async fn heartbeat_loop(
    shared: Arc<Shared>,
    every: Duration,
    mut stop: watch::Receiver<Stop>,
) {
    loop {
        let status = if shared.running.load(Ordering::Relaxed) > 0 {
            "working"
        } else {
            "idle"
        };
        let req = HeartbeatRequest {
            status: Some(status.into()),
            note: None,
        };
        if let Err(e) = shared.client.heartbeat(&req).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(jittered(every)) => {}
            _ = stop.wait_for(|s| *s == Stop::Now) => return,
        }
    }
}

pub(super) async fn sleep_or_stop(pause: Duration, stop: &mut watch::Receiver<Stop>) {
    tokio::select! {
        _ = tokio::time::sleep(pause) => {}
        _ = stop.changed() => {}
    }
}

/// `d` give or take 10 %, so a fleet does not beat in step.
pub(super) fn jittered(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.9..1.1))
}
