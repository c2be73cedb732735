//! The open-loop half of `owp bench` (issue 25, P2): lifecycles arrive at a fixed rate,
//! whether or not earlier ones are done, so a slow answer shows as latency instead of
//! slowing the load down (a closed loop hides it: coordinated omission). Each arrival takes
//! an idle worker, polls for one lease, reports `in_progress`, then `completed`. A poll's
//! latency is counted from the arrival's scheduled time, so waiting for a worker or behind a
//! slow request counts; a report's from when it is sent.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::sync::Semaphore;

use super::lifecycle::report;
use super::stats::{error_kind, print_latencies, Stats};
use crate::client::Client;
use crate::domain::status::TaskStatus;

/// Offers `rate` lifecycles a second for `window`, then waits for the last to finish and
/// prints the latencies against P2's goals (poll p99 <= 25 ms, status p99 <= 15 ms).
pub async fn run(clients: &[Client], rate: f64, window: Duration) -> anyhow::Result<()> {
    if clients.is_empty() {
        bail!("the open loop needs workers");
    }
    println!(
        "\nopen loop: {rate:.0} lifecycles/s offered for {:.0}s over {} workers",
        window.as_secs_f64(),
        clients.len()
    );
    // first in, first out: each worker waits its turn, so no one token runs into its
    // per-token rate limit while others idle
    let idle = Arc::new(Mutex::new(clients.iter().cloned().collect::<VecDeque<_>>()));
    let permits = Arc::new(Semaphore::new(clients.len()));
    let stats = Arc::new(Stats::default());
    let started = tokio::time::Instant::now();
    let arrivals = (rate * window.as_secs_f64()) as u64;
    let mut running = Vec::with_capacity(arrivals as usize);
    for i in 0..arrivals {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let (idle, permits, stats) = (idle.clone(), permits.clone(), stats.clone());
        running.push(tokio::spawn(async move {
            let _permit = permits.acquire_owned().await.expect("never closed");
            let client = idle
                .lock()
                .expect("idle workers")
                .pop_front()
                .expect("a permit");
            lifecycle(&client, due.into_std(), &stats).await;
            idle.lock().expect("idle workers").push_back(client);
        }));
    }
    for r in running {
        r.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let done = stats.completed.load(Ordering::Relaxed);
    println!(
        "open loop: {done}/{arrivals} lifecycles in {elapsed:.1}s ({:.0}/s achieved)",
        done as f64 / elapsed
    );
    print_latencies(&stats);
    let p99 = |endpoint| p99_ms(&stats, endpoint);
    println!(
        "P2: poll p99 {:.1} ms (goal <= 25), status p99 {:.1} ms (goal <= 15)",
        p99("poll"),
        p99("status")
    );
    Ok(())
}

async fn lifecycle(client: &Client, due: Instant, stats: &Stats) {
    let lease = match client.poll(Some(1), None).await {
        Ok(answer) => {
            stats.record("poll", due.elapsed());
            match answer.leases.into_iter().next() {
                Some(lease) => lease,
                None => return stats.error("poll: no lease (the queue ran dry)".into()),
            }
        }
        Err(e) => return stats.error(format!("poll: {}", error_kind(&e))),
    };
    if lease.status == TaskStatus::Leased && !report(client, &lease, "in_progress", stats).await {
        return;
    }
    if report(client, &lease, "completed", stats).await {
        stats.completed.fetch_add(1, Ordering::Relaxed);
    }
}

fn p99_ms(stats: &Stats, endpoint: &str) -> f64 {
    let lat = stats.latencies.lock().expect("stats lock");
    let Some(samples) = lat.get(endpoint).filter(|s| !s.is_empty()) else {
        return f64::NAN;
    };
    let mut s = samples.clone();
    s.sort_unstable();
    s[((s.len() - 1) as f64 * 0.99).round() as usize].as_secs_f64() * 1000.0
}
