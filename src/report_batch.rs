//! Group commit of status reports (issue 25). A guarded report does not run its own
//! statement: it joins this replica's report queue, and a writer takes everything queued
//! (up to `max_batch` reports, each task once) into one statement and one commit
//! (`store::tasks::report_guarded_many`). Each request is answered after the statement that
//! carried its report returned, so after its write is durable; a batch whose statement fails
//! writes its reports one by one (`report_guarded`), so one bad row costs only itself.
//!
//! Nothing waits to fill a batch: while the writers are busy, reports gather; an idle queue
//! writes a lone report at once. At most `writers` statements run at a time. A full queue
//! refuses the report (503 with Retry-After), so a replica that cannot keep up says so
//! instead of holding ever more requests. Writers run as tasks of their own, so a request
//! that goes away (its client left, its timeout struck) never cuts a statement that other
//! requests wait on.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::config::BatchLimits;
use crate::store::tasks::{self, Guarded, GuardedReport, GuardedRules};
use crate::store::{Db, StoreError, StoreResult};

struct Job {
    digest: [u8; 32],
    report: GuardedReport,
    answer: oneshot::Sender<StoreResult<Guarded>>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Writers running now.
    writers: usize,
}

struct Shared {
    db: Db,
    rules: GuardedRules,
    limits: BatchLimits,
    queue: Mutex<Queue>,
}

/// This replica's report queue (cheap to clone: one `Arc`).
#[derive(Clone)]
pub struct ReportQueue(Arc<Shared>);

/// The report was not queued: this replica has `max_queued` reports waiting already.
#[derive(Debug)]
pub struct QueueFull;

impl ReportQueue {
    pub fn new(db: Db, rules: GuardedRules, limits: BatchLimits) -> Self {
        Self(Arc::new(Shared {
            db,
            rules,
            limits,
            queue: Mutex::default(),
        }))
    }

    /// Writes a guarded report for the worker holding `digest`: through the queue, or, with
    /// `OWP_REPORT_BATCH=1`, in its own statement. The answer comes once the statement that
    /// wrote it returned.
    pub async fn report(
        &self,
        digest: &[u8; 32],
        report: GuardedReport,
    ) -> Result<StoreResult<Guarded>, QueueFull> {
        let s = &self.0;
        if s.limits.max_batch <= 1 {
            return Ok(tasks::report_guarded(&s.db, digest, &report, &s.rules).await);
        }
        let (answer, answered) = oneshot::channel();
        let job = Job {
            digest: *digest,
            report,
            answer,
        };
        self.push(job)
            .inspect_err(|_| crate::metrics::report_refused())?;
        // a writer answers every job it takes, even when its statement fails; it is a task
        // of its own, so only a panic in it could drop the sender
        Ok(answered.await.unwrap_or_else(|_| {
            Err(StoreError::Internal(sqlx::Error::Protocol(
                "the report writer ended without an answer".into(),
            )))
        }))
    }

    /// Queues a report, starting a writer when fewer than `writers` run.
    fn push(&self, job: Job) -> Result<(), QueueFull> {
        let mut q = self.0.queue.lock().expect("report queue lock");
        if q.jobs.len() >= self.0.limits.max_queued {
            return Err(QueueFull);
        }
        q.jobs.push_back(job);
        if q.writers < self.0.limits.writers {
            q.writers += 1;
            tokio::spawn(self.clone().write_batches());
        }
        Ok(())
    }

    /// The next batch, up to `max_batch` reports, each task once (a task's second report
    /// waits for the next batch, so it sees the first one's effect); None when nothing
    /// waits, and then the calling writer stops.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut q = self.0.queue.lock().expect("report queue lock");
        if q.jobs.is_empty() {
            q.writers -= 1;
            return None;
        }
        let mut batch = Vec::new();
        let mut tasks = HashSet::new();
        let mut deferred = VecDeque::new();
        while batch.len() < self.0.limits.max_batch {
            let Some(job) = q.jobs.pop_front() else { break };
            if tasks.insert(job.report.task_id.clone()) {
                batch.push(job);
            } else {
                deferred.push_back(job);
            }
        }
        deferred.append(&mut q.jobs);
        q.jobs = deferred;
        Some(batch)
    }

    /// One writer: batches until the queue is empty.
    async fn write_batches(self) {
        let s = &self.0;
        while let Some(mut batch) = self.next_batch() {
            crate::metrics::report_batch(batch.len());
            // the statement locks its tasks in id order itself; the input in that order
            // leaves the plan nothing to reorder
            batch.sort_by(|a, b| a.report.task_id.cmp(&b.report.task_id));
            if let [job] = &batch[..] {
                // alone (a quiet replica): the single statement, which does less for one
                // report than the batch's arrays, sorts and joins (measured: docs/BENCHMARKS.md)
                let one = tasks::report_guarded(&s.db, &job.digest, &job.report, &s.rules).await;
                let job = batch.pop().expect("one job");
                let _ = job.answer.send(one);
                continue;
            }
            let rows: Vec<(&[u8; 32], &GuardedReport)> =
                batch.iter().map(|j| (&j.digest, &j.report)).collect();
            match tasks::report_guarded_many(&s.db, &rows, &s.rules).await {
                Ok(answers) => {
                    for (job, answer) in batch.into_iter().zip(answers) {
                        // the request may have gone; its write stands
                        let _ = job.answer.send(Ok(answer));
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, reports = batch.len(), "report batch failed; writing its reports one by one");
                    crate::metrics::report_batch_fallback();
                    for job in batch {
                        let one =
                            tasks::report_guarded(&s.db, &job.digest, &job.report, &s.rules).await;
                        let _ = job.answer.send(one);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::{Report, TaskStatus};

    fn job(task: &str) -> (Job, oneshot::Receiver<StoreResult<Guarded>>) {
        let (answer, rx) = oneshot::channel();
        let report = GuardedReport::new(
            task,
            Some("l_1"),
            Report::Rest(TaskStatus::InProgress),
            None,
        )
        .expect("in_progress with a lease is guarded");
        (
            Job {
                digest: [0; 32],
                report,
                answer,
            },
            rx,
        )
    }

    fn queue(
        max_batch: usize,
        tasks: &[&str],
    ) -> (ReportQueue, Vec<oneshot::Receiver<StoreResult<Guarded>>>) {
        let db = Db::from(sqlx::PgPool::connect_lazy("postgres://unused").unwrap());
        let rules = GuardedRules {
            lease_ttl: std::time::Duration::from_secs(60),
            tier_lease_ttl: Default::default(),
            on_time_per_point: std::time::Duration::from_secs(60),
        };
        let limits = BatchLimits {
            max_batch,
            writers: 1,
            max_queued: 100,
        };
        let q = ReportQueue::new(db, rules, limits);
        let mut rxs = Vec::new();
        {
            let mut inner = q.0.queue.lock().unwrap();
            inner.writers = 1;
            for t in tasks {
                let (j, rx) = job(t);
                inner.jobs.push_back(j);
                rxs.push(rx);
            }
        }
        (q, rxs)
    }

    fn ids(batch: &[Job]) -> Vec<&str> {
        batch.iter().map(|j| j.report.task_id.as_str()).collect()
    }

    #[tokio::test]
    async fn a_batch_takes_each_task_once_and_keeps_the_rest_in_order() {
        let (q, _rx) = queue(10, &["t_a", "t_b", "t_a", "t_c", "t_b", "t_a"]);
        let first = q.next_batch().unwrap();
        assert_eq!(ids(&first), ["t_a", "t_b", "t_c"]);
        let second = q.next_batch().unwrap();
        assert_eq!(ids(&second), ["t_a", "t_b"]);
        let third = q.next_batch().unwrap();
        assert_eq!(ids(&third), ["t_a"]);
        assert!(q.next_batch().is_none(), "empty: the writer stops");
        assert_eq!(q.0.queue.lock().unwrap().writers, 0);
    }

    #[tokio::test]
    async fn a_batch_holds_at_most_max_batch_reports() {
        let (q, _rx) = queue(2, &["t_a", "t_b", "t_c"]);
        assert_eq!(ids(&q.next_batch().unwrap()), ["t_a", "t_b"]);
        assert_eq!(ids(&q.next_batch().unwrap()), ["t_c"]);
    }
}
