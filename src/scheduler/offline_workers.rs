//! Duty: a worker silent for longer than the heartbeat timeout is marked offline, and its
//! live leases are requeued at once (reason `worker_offline`). Its `pr_opened` tasks keep
//! their repo slot and area lock: the PR exists and still awaits review.

use std::time::{Duration, Instant};

use crate::store::Db;

use super::BATCH;
use crate::domain::retry::Backoff;
use crate::store::sweeps;
use crate::store::StoreResult;

#[derive(Debug, Default, Clone, Copy)]
pub struct Offline {
    pub workers: u64,
    pub requeued: u64,
    pub failed: u64,
}

pub async fn run(pool: &Db, heartbeat_timeout: Duration, backoff: Backoff) -> StoreResult<Offline> {
    let started = Instant::now();
    let mut total = Offline::default();
    loop {
        let n = sweeps::mark_silent_workers_offline(pool, heartbeat_timeout, BATCH).await?;
        total.workers += n;
        if n < BATCH as u64 {
            break;
        }
    }
    loop {
        let b = sweeps::end_offline_workers_leases(pool, BATCH, backoff).await?;
        total.requeued += b.requeued;
        total.failed += b.failed;
        if b.leases < BATCH as u64 {
            break;
        }
    }
    crate::metrics::sweep(
        "offline_workers",
        total.workers + total.requeued + total.failed,
        started.elapsed(),
    );
    crate::metrics::workers_marked_offline(total.workers);
    crate::metrics::requeued("worker_offline", total.requeued);
    Ok(total)
}
