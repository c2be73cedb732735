//! The report queue (`report_batch`): how many status reports one statement writes, how
//! many such statements run at once, and how many reports may wait. Flattened into
//! `Settings`.

use clap::Args;

use super::in_range;

/// How the report queue batches (`OWP_REPORT_BATCH`, `OWP_REPORT_WRITERS`, `OWP_REPORT_QUEUE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchLimits {
    /// The most reports one statement writes; 1 turns the queue off (each report its own
    /// statement, straight from its request).
    pub max_batch: usize,
    /// The most batch statements at a time.
    pub writers: usize,
    /// The most reports waiting; beyond it a report is refused.
    pub max_queued: usize,
}

#[derive(Clone, Debug, Args)]
pub struct ReportBatchSettings {
    /// The most status reports written by one statement and commit (group commit); 1
    /// writes each report in its own statement.
    #[arg(long, env = "OWP_REPORT_BATCH", default_value_t = 64)]
    pub report_batch: usize,

    /// The most report statements this replica runs at a time (each holds a database
    /// connection while it runs).
    #[arg(long, env = "OWP_REPORT_WRITERS", default_value_t = 4)]
    pub report_writers: usize,

    /// The most reports waiting for a statement on this replica; beyond it a report is
    /// answered 503 with Retry-After.
    #[arg(long, env = "OWP_REPORT_QUEUE", default_value_t = 2000)]
    pub report_queue: usize,
}

impl ReportBatchSettings {
    pub fn validate(&self) -> Result<(), String> {
        in_range("OWP_REPORT_BATCH", self.report_batch, 1, 1000)?;
        in_range("OWP_REPORT_WRITERS", self.report_writers, 1, 64)?;
        in_range("OWP_REPORT_QUEUE", self.report_queue, 1, 1_000_000)
    }

    pub fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_batch: self.report_batch,
            writers: self.report_writers,
            max_queued: self.report_queue,
        }
    }
}
