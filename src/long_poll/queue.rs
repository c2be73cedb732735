//! The queue of waiting polls, oldest first: a waiter holds no transaction and no
//! database connection. A wake goes to the oldest live waiter; one taken by a waiter that
//! left before looking goes on to the next, so no wake is lost.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
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

type Queue = Arc<Mutex<VecDeque<oneshot::Sender<Wake>>>>;

#[derive(Default)]
pub struct Wakeups {
    queue: Queue,
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
        let Some(tx) = q.pop_front() else { break };
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
    /// Joins the back of the queue.
    pub fn wait(&self) -> Waiter {
        let (tx, rx) = oneshot::channel();
        let live = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        let mut q = self.queue.lock().expect("wakeups lock");
        // waiters that timed out stay queued until popped: compact when they dominate
        if q.len() > 64 && q.len() > 2 * live {
            q.retain(|w| !w.is_closed());
        }
        q.push_back(tx);
        Waiter {
            rx,
            queue: self.queue.clone(),
            _live: LiveGuard(self.live.clone()),
        }
    }

    /// Wakes up to `n` waiters, oldest first; how many were woken.
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
        let mut a = w.wait();
        let mut b = w.wait();
        let mut c = w.wait();
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
        let first = w.wait();
        let mut second = w.wait();
        assert_eq!(w.wake(1, 2), 1);
        // the first poll claimed before it looked at its waiter: the wake moves on
        drop(first);
        assert_eq!(second.woken().await, Some(Wake { relays_left: 2 }));
        // a wake that was taken is not passed on again
        drop(second);
        let mut third = w.wait();
        assert!(third.rx.try_recv().is_err());
    }

    #[test]
    fn timed_out_waiters_do_not_pile_up() {
        let w = Wakeups::default();
        for _ in 0..10_000 {
            drop(w.wait());
        }
        let keep = w.wait();
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
