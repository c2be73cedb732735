//! Trying again after transient failures (network, 429, 503), with exponential backoff,
//! full jitter, and the server's `Retry-After` as the floor.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::{ClientError, ClientResult};

#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The pause before try number `attempt` (1 = the first retry): a random point of
    /// `first * 2^(attempt-1)` capped at `max`, never below the server's `Retry-After`.
    pub fn pause(&self, attempt: u32, err: &ClientError) -> Duration {
        let ceiling = self
            .first
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        let jittered = rand::rng().random_range(ceiling / 2..=ceiling);
        jittered.max(err.retry_after().unwrap_or_default())
    }
}

/// Runs `op` until it succeeds, fails for good, or `tries` transient failures happened;
/// `on_retry` hears each pause (for a log line).
pub async fn retry<T, F, Fut>(
    backoff: Backoff,
    tries: u32,
    mut on_retry: impl FnMut(&ClientError, Duration),
    mut op: F,
) -> ClientResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ClientResult<T>>,
{
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt + 1 < tries => {
                attempt += 1;
                let pause = backoff.pause(attempt, &e);
                on_retry(&e, pause);
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate_limited(secs: u64) -> ClientError {
        ClientError::Api {
            status: 429,
            body: crate::wire::ErrorBody {
                code: "rate_limited".into(),
                message: "slow down".into(),
                details: None,
                suggestion: None,
            },
            retry_after: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn pauses_grow_to_the_cap_and_respect_retry_after() {
        let b = Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let e = rate_limited(0);
        for attempt in 1..20 {
            let p = b.pause(attempt, &e);
            assert!(p <= Duration::from_secs(2), "{attempt}: {p:?}");
        }
        assert!(b.pause(5, &e) >= Duration::from_millis(800));
        assert_eq!(b.pause(1, &rate_limited(9)), Duration::from_secs(9));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_failures_then_gives_up() {
        let mut calls = 0;
        let out: ClientResult<()> = retry(
            Backoff::default(),
            3,
            |_, _| {},
            || {
                calls += 1;
                async { Err(rate_limited(1)) }
            },
        )
        .await;
        assert!(out.is_err());
        assert_eq!(calls, 3);
    }
}
