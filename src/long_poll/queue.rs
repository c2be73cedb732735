//! The queue of waiting polls, by rank, then oldest first: a waiter holds no transaction
//! and no database connection. A wake goes to the live waiter of the highest rank (its
//! worker's reputation score: reputation decides who gets scarce work first, not only who
//! may have it), the oldest of those; one taken by a waiter that left before looking goes
//! on to the next, so no wake is lost.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

/// How many more waiters a woken poll that claims nothing may wake in turn.
pub const RELAYS: u8 = 3;

/// What a woken poll is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wake {
    /// Wakes it may still pass on if it claims nothing.
    pub relays_left: u8,
}

/// Highest rank first, then the order they joined.
type Place = (Reverse<i16>, u64);
type Queue = Arc<Mutex<BTreeMap<Place, oneshot::Sender<Wake>>>>;

#[derive(Default)]
pub struct Wakeups {
    queue: Queue,
    /// The order waiters joined in.
    joined: AtomicU64,
    /// Waiters registered and not yet dropped (the queue may also hold dropped ones).
    live: Arc<AtomicUsize>,
}

/// A registered waiter: resolves when woken; dropping it leaves the queue. A waiter
/// dropped after it was woken but before it took the wake (its poll had claimed already)
/// hands the wake to the next waiter, so no wake is lost.
pub struct Waiter {
    rx: oneshot::Receiver<Wake>,
    queue: Queue,
    _live: LiveGuard,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        if let Ok(wake) = self.rx.try_recv() {
            wake_in(&self.queue, 1, wake.relays_left);
        }
    }
}

fn wake_in(queue: &Queue, n: usize, relays_left: u8) -> usize {
    let mut woken = 0;
    let mut q = queue.lock().expect("wakeups lock");
    while woken < n {
        let Some((_, tx)) = q.pop_first() else { break };
        if tx.send(Wake { relays_left }).is_ok() {
            woken += 1;
        }
    }
    woken
}

struct LiveGuard(Arc<AtomicUsize>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Waiter {
    /// Resolves when woken; `None` if the queue was dropped.
    pub async fn woken(&mut self) -> Option<Wake> {
        (&mut self.rx).await.ok()
    }
}

impl Wakeups {
    /// Joins the queue behind the waiters of its rank and above.
    pub fn wait(&self, rank: i16) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        let seq = self.joined.fetch_add(1, Ordering::Relaxed);
        let mut q = self.queue.lock().expect("wakeups lock");
        // waiters that timed out stay queued until popped: compact when they dominate
        if q.len() > 64 && q.len() > 2 * live {
            q.retain(|_, w| !w.is_closed());
        }
        q.insert((Reverse(rank), seq), tx);
        Waiter {
            rx,
            queue: self.queue.clone(),
            _live: LiveGuard(self.live.clone()),
        }
    }

    /// Wakes up to `n` waiters, highest rank first, then oldest; how many were woken.
    pub fn wake(&self, n: usize, relays_left: u8) -> usize {
        wake_in(&self.queue, n, relays_left)
    }

    /// Polls waiting now.
    pub fn waiting(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_woken_oldest_first_and_only_as_many_as_asked() {
        let w = Wakeups::default();
        let mut a = w.wait(50);
        let mut b = w.wait(50);
        let mut c = w.wait(50);
        assert_eq!(w.waiting(), 3);
        assert_eq!(w.wake(1, RELAYS), 1);
        assert_eq!(
            a.woken().await,
            Some(Wake {
                relays_left: RELAYS
            })
        );
        assert!(b.rx.try_recv().is_err() && c.rx.try_recv().is_err());
        // a waiter that gave up is skipped, not counted
        drop(b);
        assert_eq!(w.wait_count_for_test(), 2);
        assert_eq!(w.wake(5, 0), 1);
        assert_eq!(c.woken().await, Some(Wake { relays_left: 0 }));
        assert_eq!(w.wake(1, 0), 0, "nobody left");
    }

    #[tokio::test]
    async fn a_wake_taken_by_a_waiter_that_leaves_goes_to_the_next() {
        let w = Wakeups::default();
        let first = w.wait(50);
        let mut second = w.wait(50);
        assert_eq!(w.wake(1, 2), 1);
        // the first poll claimed before it looked at its waiter: the wake moves on
        drop(first);
        assert_eq!(second.woken().await, Some(Wake { relays_left: 2 }));
        // a wake that was taken is not passed on again
        drop(second);
        let mut third = w.wait(50);
        assert!(third.rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_highest_rank_is_woken_first_then_the_oldest() {
        let w = Wakeups::default();
        let mut low = w.wait(10);
        let mut first = w.wait(80);
        let mut second = w.wait(80);
        assert_eq!(w.wake(1, 0), 1);
        assert!(first.woken().await.is_some());
        assert!(second.rx.try_recv().is_err() && low.rx.try_recv().is_err());
        assert_eq!(w.wake(1, 0), 1);
        assert!(second.woken().await.is_some());
        assert!(low.rx.try_recv().is_err(), "rank before age");
        assert_eq!(w.wake(1, 0), 1);
        assert!(low.woken().await.is_some());
    }

    #[test]
    fn timed_out_waiters_do_not_pile_up() {
        let w = Wakeups::default();
        for _ in 0..10_000 {
            drop(w.wait(50));
        }
        let keep = w.wait(50);
        assert!(w.queue.lock().unwrap().len() <= 130);
        assert_eq!(w.waiting(), 1);
        drop(keep);
    }

    impl Wakeups {
        fn wait_count_for_test(&self) -> usize {
            self.queue.lock().unwrap().len()
        }
    }
}
