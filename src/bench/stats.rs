//! What every benchmark counts and prints: latencies per endpoint, errors by kind, and a
//! server's resident memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::bail;

use crate::client::ClientError;

#[derive(Default)]
pub(crate) struct Stats {
    pub(crate) latencies: Mutex<BTreeMap<&'static str, Vec<Duration>>>,
    pub(crate) errors: Mutex<BTreeMap<String, u64>>,
    pub(crate) completed: AtomicU64,
}

impl Stats {
    pub(crate) fn record(&self, endpoint: &'static str, d: Duration) {
        self.latencies
            .lock()
            .expect("stats lock")
            .entry(endpoint)
            .or_default()
            .push(d);
    }
    pub(crate) fn error(&self, what: String) {
        *self
            .errors
            .lock()
            .expect("stats lock")
            .entry(what)
            .or_default() += 1;
    }
}

/// The peak resident memory of `pid`, sampled every 200 ms into `peak` (KiB).
pub(crate) async fn sample_rss(pid: u32, peak: Arc<AtomicU64>) {
    loop {
        if let Some(kib) = rss_kib(pid) {
            peak.fetch_max(kib, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(crate) fn print_report(stats: &Stats, done: u64, target: u64, elapsed: Duration) {
    println!();
    println!(
        "completed lifecycles: {done}/{target} in {:.2}s",
        elapsed.as_secs_f64()
    );
    println!(
        "throughput: {:.0} task lifecycles/s",
        done as f64 / elapsed.as_secs_f64()
    );
    print_latencies(stats);
}

/// Latency percentiles per endpoint, and the errors by kind.
pub(crate) fn print_latencies(stats: &Stats) {
    let lat = stats.latencies.lock().expect("stats lock").clone();
    println!(
        "{:<12} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "endpoint", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (endpoint, samples) in lat.iter() {
        let mut s = samples.clone();
        s.sort_unstable();
        let p = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        println!(
            "{endpoint:<12} {:>9} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.len(),
            p(0.5),
            p(0.95),
            p(0.99),
            p(1.0)
        );
    }
    let errors = stats.errors.lock().expect("stats lock").clone();
    println!(
        "errors: {}",
        if errors.is_empty() {
            "none".to_string()
        } else {
            format!("{errors:?}")
        }
    );
}

/// An error as a short, countable key: the HTTP status and code, or the transport failure.
pub(crate) fn error_kind(e: &ClientError) -> String {
    match (e.status(), e.code()) {
        (Some(status), Some(code)) => format!("{status} {code}"),
        _ => e.to_string(),
    }
}

/// The servers of a `--url` list (`A,B,C`): load is spread over them round-robin.
pub(crate) fn base_urls(list: &str) -> anyhow::Result<Vec<String>> {
    let bases: Vec<String> = list
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if bases.is_empty() {
        bail!("--url names no server");
    }
    Ok(bases)
}

/// Resident set size of a process, from /proc (Linux).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
