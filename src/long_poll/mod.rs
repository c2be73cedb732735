//! Long polling (`GET /v1/work?wait=N`), owned here whole: the queue of waiting polls
//! (`queue`), the work epoch and the idle-poll memory that let an idle fleet re-poll
//! without a claim, the relays that pass a wake on, the typed wake causes and their
//! counts, and the count of local changes the other replicas have yet to hear of.
//!
//! Whatever may make work claimable calls [`LongPoll::work_ready`]; it wakes a few waiting
//! polls here (never the fleet for one task). A woken poll that claims something passes
//! the wake on (more may be there); one that claims nothing passes it on only `RELAYS`
//! times (the work may be for someone else). The cross-replica transport (one `NOTIFY` per
//! interval, one `LISTEN` connection, the fallback check) is `server::work_signals`, which
//! turns what it hears into [`LongPoll::wake`] calls.

mod queue;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub use queue::{Waiter, Wake, Wakeups, RELAYS};

/// The most waiting polls one change wakes directly (woken polls pass it on).
const MAX_WAKE: usize = 64;
/// Workers whose rank a replica remembers before it starts over.
const MAX_REMEMBERED: usize = 100_000;

/// Why a waiting poll was woken (the `cause` label of `owp_long_poll_wakeups_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WakeCause {
    /// Work changed on this replica.
    Local,
    /// Another replica announced work (its `NOTIFY`).
    Remote,
    /// A woken poll passed its wake on.
    Relay,
    /// No signal came, but the queue holds claimable work.
    Fallback,
    /// The signal connection was (re)established: signals may have been missed.
    Reconnect,
}

impl WakeCause {
    pub const ALL: [WakeCause; 5] = [
        WakeCause::Local,
        WakeCause::Remote,
        WakeCause::Relay,
        WakeCause::Fallback,
        WakeCause::Reconnect,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WakeCause::Local => "local",
            WakeCause::Remote => "remote",
            WakeCause::Relay => "relay",
            WakeCause::Fallback => "fallback",
            WakeCause::Reconnect => "reconnect",
        }
    }

    /// A relay passes on a wake it got; every other cause means new work may be there.
    fn is_news(self) -> bool {
        self != WakeCause::Relay
    }
}

/// What one claim of a poll found, as the caller's claim reports it.
pub struct Attempt<T> {
    /// What the poll answers with (the worker's live leases).
    pub answer: T,
    /// Leases this claim granted.
    pub new: usize,
    /// The worker had room for more (capacity left, not paused): worth waiting for.
    pub can_take_more: bool,
    /// The worker's reputation score, when the claim read it: its rank among waiting
    /// polls from now on (higher is woken first).
    pub rank: Option<i16>,
}

/// When a poll that may wait `wait` gives up: a little before, at random (up to a tenth
/// sooner), so a fleet that started waiting together does not re-poll in one wave.
pub fn wait_until(wait: Duration) -> Instant {
    let spread = rand::random_range(0.9..=1.0);
    Instant::now() + wait.mul_f64(spread)
}

/// A poll's shape: how long it may wait, and the worker it is for.
pub struct Poll<'a> {
    pub worker_id: &'a str,
    /// `None` for a plain poll that never waits.
    pub wait_until: Option<Instant>,
}

#[derive(Default)]
pub struct LongPoll {
    queue: Wakeups,
    /// Bumped whenever work may have become claimable (any cause but a relay).
    epoch: AtomicU64,
    /// Workers whose last long poll here claimed nothing though they had room, with the
    /// epoch it saw: while the epoch stands, their next poll need not claim again.
    idle: Mutex<HashMap<String, u64>>,
    /// Each worker's rank as its last claim here read it (its reputation score): a poll
    /// queues by it before its first claim of the call.
    ranks: Mutex<HashMap<String, i16>>,
    /// Work made claimable here since the last `NOTIFY` (`server::work_signals`).
    unannounced: AtomicUsize,
    /// Polls woken, by cause (indexed like `WakeCause::ALL`).
    wakes: [AtomicU64; 5],
    /// Poked when work changed here or on another replica: the state stream's reader
    /// reads at once instead of at its next second.
    changed: Notify,
}

impl LongPoll {
    /// Work may have become claimable here (about `n` tasks' worth): wakes this replica's
    /// waiting polls and counts it for the other replicas.
    pub fn work_ready(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.wake(n, WakeCause::Local);
        self.unannounced.fetch_add(n, Ordering::Relaxed);
    }

    /// Wakes up to `n` waiting polls of this replica (capped; they pass it on).
    pub fn wake(&self, n: usize, cause: WakeCause) {
        if cause.is_news() {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        let woken = self.queue.wake(n.min(MAX_WAKE), RELAYS);
        self.count(cause, woken);
        if matches!(cause, WakeCause::Local | WakeCause::Remote) {
            self.changed.notify_one();
        }
    }

    /// Polls this replica has woken for `cause` since it started.
    pub fn wakes(&self, cause: WakeCause) -> u64 {
        self.wakes[cause as usize].load(Ordering::Relaxed)
    }

    /// Polls waiting now.
    pub fn waiting(&self) -> usize {
        self.queue.waiting()
    }

    /// The work made claimable here since the last call, to announce to the other replicas.
    pub fn take_unannounced(&self) -> usize {
        self.unannounced.swap(0, Ordering::Relaxed)
    }

    /// Resolves at the next local or remote change of work (for the state stream).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Runs one poll. `claim` claims up to the worker's free capacity. A plain poll claims
    /// once. A long poll queues before its first claim (a wake that comes while it claims
    /// is not missed) and, while it finds nothing though it has room, waits for a wake,
    /// `wait_until`, or `stopped`, claiming again after each wake. When nothing new can be
    /// there since the worker's last empty claim here, `repoll` answers instead of a claim.
    pub async fn poll<T, E, C, F, R, G>(
        &self,
        poll: Poll<'_>,
        stopped: impl Future<Output = ()>,
        repoll: R,
        mut claim: C,
    ) -> Result<T, E>
    where
        C: FnMut() -> F,
        F: Future<Output = Result<Attempt<T>, E>>,
        R: FnOnce() -> G,
        G: Future<Output = Result<Option<T>, E>>,
    {
        let Some(deadline) = poll.wait_until else {
            let a = claim().await?;
            if let Some(r) = a.rank {
                self.remember_rank(poll.worker_id, r);
            }
            return Ok(a.answer);
        };
        tokio::pin!(stopped);
        let me = poll.worker_id;
        let mut rank = self.rank_of(me);
        let mut waiter = self.queue.wait(rank);
        let mut answer = None;
        if self.nothing_new_for(me) {
            answer = repoll().await?;
        }
        // once woken: how many more times a wake that finds nothing may be passed on
        let mut relays_left: Option<u8> = None;
        loop {
            let found = match answer.take() {
                Some(found) => found,
                None => {
                    let epoch = self.epoch.load(Ordering::Relaxed);
                    let a = claim().await?;
                    if let Some(r) = a.rank.filter(|r| *r != rank) {
                        rank = r;
                        self.remember_rank(me, r);
                        // queue again at the rank the claim read; a wake the old place
                        // took is handed on (possibly to the new place), not lost
                        waiter = self.queue.wait(rank);
                    }
                    if a.new > 0 || !a.can_take_more {
                        self.forget_idle(me);
                        if a.new > 0 && relays_left.is_some() {
                            // more may be there: the next waiting poll looks too
                            self.wake(1, WakeCause::Relay);
                        }
                        return Ok(a.answer);
                    }
                    self.remember_idle(me, epoch);
                    if let Some(r) = relays_left.filter(|r| *r > 0) {
                        // the work may be for someone else: pass the wake on, a few times
                        let woken = self.queue.wake(1, r - 1);
                        self.count(WakeCause::Relay, woken);
                    }
                    a.answer
                }
            };
            let wake = tokio::select! {
                wake = waiter.woken() => wake,
                () = tokio::time::sleep_until(deadline.into()) => None,
                () = &mut stopped => None,
            };
            let Some(wake) = wake else {
                return Ok(found);
            };
            waiter = self.queue.wait(rank);
            relays_left = Some(wake.relays_left);
        }
    }

    fn count(&self, cause: WakeCause, n: usize) {
        if n == 0 {
            return;
        }
        self.wakes[cause as usize].fetch_add(n as u64, Ordering::Relaxed);
        crate::metrics::long_poll_wakeups(cause.as_str(), n);
    }

    /// The rank a worker's poll queues at before it claims: its last claim's, else neutral.
    fn rank_of(&self, worker_id: &str) -> i16 {
        let ranks = self.ranks.lock().expect("ranks lock");
        ranks
            .get(worker_id)
            .copied()
            .unwrap_or(crate::domain::reputation::NEUTRAL_SCORE)
    }

    fn remember_rank(&self, worker_id: &str, rank: i16) {
        let mut ranks = self.ranks.lock().expect("ranks lock");
        // one entry per worker that long-polls here; a replica that saw a huge fleet
        // starts over rather than keep them all
        if ranks.len() >= MAX_REMEMBERED {
            ranks.clear();
        }
        ranks.insert(worker_id.to_string(), rank);
    }

    /// Whether the worker's last long poll here claimed nothing though it had room (it
    /// waits, or would repoll).
    pub fn is_idle(&self, worker_id: &str) -> bool {
        self.idle
            .lock()
            .expect("idle polls lock")
            .contains_key(worker_id)
    }

    /// The worker's long poll claimed nothing at `epoch` though it had room.
    fn remember_idle(&self, worker_id: &str, epoch: u64) {
        let mut idle = self.idle.lock().expect("idle polls lock");
        idle.insert(worker_id.to_string(), epoch);
    }

    /// Forgets the worker's empty claim (it claimed, or has no room).
    fn forget_idle(&self, worker_id: &str) {
        let mut idle = self.idle.lock().expect("idle polls lock");
        idle.remove(worker_id);
    }

    /// Nothing that could make work claimable happened since the worker's last empty claim
    /// on this replica: claiming again now would find nothing.
    fn nothing_new_for(&self, worker_id: &str) -> bool {
        let idle = self.idle.lock().expect("idle polls lock");
        idle.get(worker_id) == Some(&self.epoch.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;

    fn waiting_poll(worker: &str, secs: u64) -> Poll<'_> {
        Poll {
            worker_id: worker,
            wait_until: Some(Instant::now() + Duration::from_secs(secs)),
        }
    }

    async fn nothing<T>() -> Result<Option<T>, Infallible> {
        Ok(None)
    }

    #[tokio::test]
    async fn an_idle_repoll_skips_the_claim_until_work_may_be_there() {
        let lp = LongPoll::default();
        let claims = AtomicUsize::new(0);
        let empty = || async {
            claims.fetch_add(1, Ordering::Relaxed);
            Ok::<_, Infallible>(Attempt {
                answer: 0u32,
                new: 0,
                can_take_more: true,
                rank: None,
            })
        };
        let short = || Poll {
            worker_id: "w",
            wait_until: Some(Instant::now() + Duration::from_millis(20)),
        };
        lp.poll(short(), std::future::pending(), nothing, empty)
            .await
            .unwrap();
        assert_eq!(claims.load(Ordering::Relaxed), 1);
        let repolled = lp
            .poll(
                short(),
                std::future::pending(),
                || async { Ok(Some(7)) },
                empty,
            )
            .await
            .unwrap();
        assert_eq!(repolled, 7, "nothing new: the repoll answers, no claim");
        assert_eq!(claims.load(Ordering::Relaxed), 1);
        lp.work_ready(1);
        lp.poll(
            short(),
            std::future::pending(),
            || async { Ok(Some(7)) },
            empty,
        )
        .await
        .unwrap();
        assert_eq!(claims.load(Ordering::Relaxed), 2, "new work: a claim again");
    }

    #[tokio::test]
    async fn a_waiting_poll_claims_again_when_woken_and_ends_when_stopped() {
        let lp = Arc::new(LongPoll::default());
        let stock = Arc::new(AtomicUsize::new(0));
        let poller = {
            let (lp, stock) = (lp.clone(), stock.clone());
            tokio::spawn(async move {
                let claim = || async {
                    let new = stock.swap(0, Ordering::Relaxed);
                    Ok::<_, Infallible>(Attempt {
                        answer: new,
                        new,
                        can_take_more: true,
                        rank: None,
                    })
                };
                lp.poll(
                    waiting_poll("w", 30),
                    std::future::pending(),
                    nothing,
                    claim,
                )
                .await
            })
        };
        while lp.waiting() == 0 {
            tokio::task::yield_now().await;
        }
        stock.store(2, Ordering::Relaxed);
        lp.work_ready(2);
        assert_eq!(poller.await.unwrap().unwrap(), 2);
        assert_eq!(lp.wakes(WakeCause::Local), 1);
        assert_eq!(lp.take_unannounced(), 2);
        assert_eq!(lp.take_unannounced(), 0);

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = stop_rx.await;
        };
        let empty = || async {
            Ok::<_, Infallible>(Attempt {
                answer: 0usize,
                new: 0,
                can_take_more: true,
                rank: None,
            })
        };
        let waiting = lp.poll(waiting_poll("v", 30), stopped, nothing, empty);
        let (answer, ()) = tokio::join!(waiting, async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let _ = stop_tx.send(());
        });
        assert_eq!(answer.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_worker_without_room_does_not_wait() {
        let lp = LongPoll::default();
        let full = || async {
            Ok::<_, Infallible>(Attempt {
                answer: 3u32,
                new: 0,
                can_take_more: false,
                rank: None,
            })
        };
        let answer = lp
            .poll(waiting_poll("w", 60), std::future::pending(), nothing, full)
            .await
            .unwrap();
        assert_eq!(answer, 3);
        assert_eq!(lp.waiting(), 0);
    }
}
