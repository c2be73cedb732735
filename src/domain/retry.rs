//! Retry backoff: how long a task that lost an attempt (failed, PR closed, lease expired,
//! worker offline) waits before it is claimable again, and how much longer the worker that
//! lost it waits. See "Retries" in docs/PROTOCOL.md.

use std::time::Duration;

/// `OWP_RETRY_BACKOFF` (base) and `OWP_RETRY_BACKOFF_MAX` (cap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

/// When a requeued task becomes claimable, counted from the requeue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryDelay {
    /// For every eligible worker.
    pub everyone: Duration,
    /// For the worker whose attempt was lost.
    pub same_worker: Duration,
}

impl Backoff {
    pub const NONE: Self = Self {
        base: Duration::ZERO,
        max: Duration::ZERO,
    };

    /// The delay after the `attempt`-th lost attempt (1-based): `base * 2^(attempt-1)`,
    /// at most `max`. The worker that lost it waits that long again, so any other
    /// eligible worker polling at the protocol's cadence gets it first. A zero base turns
    /// both off.
    pub fn after(&self, attempt: i32) -> RetryDelay {
        let everyone = doubling(self.base, attempt, self.max);
        RetryDelay {
            everyone,
            same_worker: everyone * 2,
        }
    }
}

/// `base * 2^(attempt-1)`, at most `cap`: the backoff of task retries and of the
/// outboxes' deliveries.
pub fn doubling(base: Duration, attempt: i32, cap: Duration) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(30);
    base.checked_mul(1 << doublings).unwrap_or(cap).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delay_doubles_per_attempt_up_to_the_cap() {
        let b = Backoff {
            base: 30 * S,
            max: 600 * S,
        };
        let waits: Vec<u64> = (1..=7).map(|a| b.after(a).everyone.as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(b.after(1).same_worker, 60 * S);
        assert_eq!(b.after(1000).everyone, 600 * S);
        // attempt 0 cannot happen (a lost attempt counts itself), but must not underflow
        assert_eq!(b.after(0).everyone, 30 * S);
    }

    #[test]
    fn a_zero_base_turns_backoff_off() {
        let d = Backoff::NONE.after(3);
        assert_eq!(d.everyone, Duration::ZERO);
        assert_eq!(d.same_worker, Duration::ZERO);
    }
}
