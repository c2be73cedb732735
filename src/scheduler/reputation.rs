//! Duty: reconcile every worker's reputation counters with its lease history (repairing
//! and exporting any drift), then apply the automatic promotion rule, if one is set.

use std::time::Instant;

use super::BATCH;
use crate::app::AppContext;
use crate::store::reputation::{self, Reconciled};
use crate::store::StoreResult;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub reconciled: Reconciled,
    pub promoted: usize,
}

pub async fn run(app: &AppContext) -> StoreResult<Outcome> {
    let started = Instant::now();
    let mut total = Reconciled::default();
    let mut after = String::new();
    loop {
        let (r, last) = reputation::reconcile_batch(&app.pool, &after, BATCH).await?;
        total.checked += r.checked;
        total.repaired += r.repaired;
        match last {
            Some(id) => after = id,
            None => break,
        }
    }
    crate::metrics::reputation_reconciled(total.repaired);
    if total.repaired > 0 {
        // the triggers keep the counters exact: a repair means a bug or a manual edit
        tracing::warn!(
            workers = total.repaired,
            "reputation: counters drifted from the lease history; repaired"
        );
    }
    let mut promoted = 0;
    if let Some(rule) = &app.promotion {
        let ids = reputation::promote_basic(&app.pool, rule).await?;
        promoted = ids.len();
        crate::metrics::promoted("basic", promoted);
        for id in &ids {
            tracing::info!(worker_id = %id, rule = %rule, "promoted to basic");
        }
    }
    crate::metrics::sweep(
        "reputation",
        total.repaired + promoted as u64,
        started.elapsed(),
    );
    Ok(Outcome {
        reconciled: total,
        promoted,
    })
}
