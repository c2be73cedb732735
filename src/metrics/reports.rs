//! The report queue's figures (`report_batch`): how many reports each statement wrote, how
//! often a batch fell back to one statement per report, and reports refused at a full queue.

use metrics::{counter, describe_counter, describe_histogram, histogram};

pub const REPORT_BATCH_ROWS: &str = "owp_report_batch_rows";
pub const REPORT_BATCH_FALLBACKS: &str = "owp_report_batch_fallbacks_total";
pub const REPORTS_REFUSED: &str = "owp_reports_refused_total";

pub(super) fn describe() {
    describe_histogram!(
        REPORT_BATCH_ROWS,
        "Status reports written by one statement of the report queue."
    );
    describe_counter!(
        REPORT_BATCH_FALLBACKS,
        "Report batches whose statement failed and whose reports were written one by one."
    );
    describe_counter!(
        REPORTS_REFUSED,
        "Status reports answered 503 because this replica's report queue was full."
    );
}

pub fn report_batch(rows: usize) {
    histogram!(REPORT_BATCH_ROWS).record(rows as f64);
}

pub fn report_batch_fallback() {
    counter!(REPORT_BATCH_FALLBACKS).increment(1);
}

pub fn report_refused() {
    counter!(REPORTS_REFUSED).increment(1);
}
