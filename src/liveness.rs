//! Signs of life, coalesced per replica. Every authenticated request of an online worker
//! is a sign of life; instead of one row write (and one durable commit) per request, this
//! replica remembers who it heard from and writes them all in one statement per interval
//! (`scheduler::liveness`). A worker that was offline is not coalesced: its return, with its
//! `worker_online` event, is written by the request itself, at once.
//!
//! The offline sweep reads `last_heartbeat`, which now lags a request by at most one flush
//! interval (`LivenessStamps::interval`, a twentieth of the heartbeat timeout, at most a
//! second); the sweep's timeout is many intervals long.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::ids::WorkerId;

/// The longest a sign of life waits before it is written.
const MAX_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct LivenessStamps {
    seen: Mutex<HashSet<WorkerId>>,
}

impl LivenessStamps {
    /// The worker was heard from just now.
    pub fn seen(&self, worker: &WorkerId) {
        let mut seen = self.seen.lock().expect("liveness lock");
        if !seen.contains(worker) {
            seen.insert(worker.clone());
        }
    }

    /// Everyone heard from since the last call, to write (sorted: replicas that write
    /// overlapping sets lock the rows in one order).
    pub fn take(&self) -> Vec<WorkerId> {
        let seen = std::mem::take(&mut *self.seen.lock().expect("liveness lock"));
        let mut ids: Vec<WorkerId> = seen.into_iter().collect();
        ids.sort_unstable();
        ids
    }

    /// How often the stamps are written for a pool whose workers count as offline after
    /// `heartbeat_timeout` of silence.
    pub fn interval(heartbeat_timeout: Duration) -> Duration {
        (heartbeat_timeout / 20).clamp(Duration::from_millis(50), MAX_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_worker_is_written_once_per_interval_in_id_order() {
        let s = LivenessStamps::default();
        for id in ["w_b", "w_a", "w_b", "w_c", "w_a"] {
            s.seen(&WorkerId::from(id.to_string()));
        }
        let ids: Vec<String> = s.take().into_iter().map(String::from).collect();
        assert_eq!(ids, ["w_a", "w_b", "w_c"]);
        assert!(s.take().is_empty(), "taken once");
    }

    #[test]
    fn the_interval_is_a_small_part_of_the_timeout() {
        assert_eq!(
            LivenessStamps::interval(Duration::from_secs(90)),
            Duration::from_secs(1)
        );
        assert_eq!(
            LivenessStamps::interval(Duration::from_secs(4)),
            Duration::from_millis(200)
        );
        assert_eq!(
            LivenessStamps::interval(Duration::from_millis(100)),
            Duration::from_millis(50)
        );
    }
}
