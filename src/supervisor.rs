//! The one owner of a replica's background work. Every service, duty loop, listener and
//! stream reader is spawned here under a name; one stop signal (`CancellationToken`) ends
//! them all, and shutdown waits for them (`TaskTracker`), naming any that did not finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

#[derive(Default)]
pub struct Supervisor {
    stop: CancellationToken,
    tracker: TaskTracker,
    /// Tasks running now, by name (several may share one: a listener per connection).
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

/// Takes a task's name off the running list when the task ends, however it ends.
struct Running {
    name: &'static str,
    running: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut map = self.running.lock().expect("supervisor lock");
        if let Some(n) = map.get_mut(self.name) {
            *n -= 1;
            if *n == 0 {
                map.remove(self.name);
            }
        }
    }
}

impl Supervisor {
    /// Runs `task` in the background until it returns; it must return soon after
    /// [`Supervisor::stopped`] resolves.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        *self
            .running
            .lock()
            .expect("supervisor lock")
            .entry(name)
            .or_default() += 1;
        let guard = Running {
            name,
            running: self.running.clone(),
        };
        self.tracker.spawn(async move {
            let _guard = guard;
            task.await
        })
    }

    /// Starts the shutdown: every task's [`Supervisor::stopped`] resolves.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once [`Supervisor::stop`] was called.
    pub fn stopped(&self) -> WaitForCancellationFuture<'_> {
        self.stop.cancelled()
    }

    /// A stop signal to hand to code that outlives a borrow of the supervisor.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops everything and waits up to `timeout` for every task to end; the names of
    /// those still running at the deadline (empty when all ended).
    pub async fn shut_down(&self, timeout: Duration) -> Vec<&'static str> {
        self.stop();
        self.tracker.close();
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_ok()
        {
            return vec![];
        }
        self.running_names()
    }

    /// The names of the tasks running now.
    pub fn running_names(&self) -> Vec<&'static str> {
        let map = self.running.lock().expect("supervisor lock");
        map.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_every_task_and_names_the_stragglers() {
        let s = Supervisor::default();
        let token = s.stop_token();
        s.spawn("polite", async move { token.cancelled().await });
        s.spawn("stubborn", std::future::pending::<()>());
        assert_eq!(s.running_names(), vec!["polite", "stubborn"]);
        let left = s.shut_down(Duration::from_millis(200)).await;
        assert_eq!(
            left,
            vec!["stubborn"],
            "the polite task ended on the stop signal"
        );
        assert!(s.is_stopping());
    }

    #[tokio::test]
    async fn a_task_that_ends_leaves_the_running_list() {
        let s = Supervisor::default();
        s.spawn("one-shot", async {}).await.unwrap();
        assert!(s.running_names().is_empty());
        assert!(s.shut_down(Duration::from_secs(1)).await.is_empty());
    }
}
