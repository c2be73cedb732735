//! Duty: prune history older than `OWP_RETENTION` (see `store::retention`), in batches of
//! `BATCH` rows per table, one short transaction each, so claims never wait on it.

use std::time::{Duration, Instant};

use crate::store::Db;

use super::BATCH;
use crate::store::retention::{self, Pruned};
use crate::store::StoreResult;

/// Most batches one run deletes; the rest waits for the next interval, so a first run
/// over years of history does not hold the leader's sweep for long.
const MAX_BATCHES: usize = 50;

pub async fn run(pool: &Db, older_than: Duration) -> StoreResult<Pruned> {
    let started = Instant::now();
    let mut total = Pruned::default();
    for _ in 0..MAX_BATCHES {
        let b = retention::prune_batch(pool, older_than, BATCH).await?;
        total.audit_events += b.audit_events;
        total.leases += b.leases;
        total.artifacts += b.artifacts;
        total.offers += b.offers;
        let batch = BATCH as u64;
        if b.audit_events < batch && b.leases < batch && b.artifacts < batch && b.offers < batch {
            break;
        }
    }
    crate::metrics::sweep("retention", total.total(), started.elapsed());
    crate::metrics::retention_pruned("audit_events", total.audit_events);
    crate::metrics::retention_pruned("leases", total.leases);
    crate::metrics::retention_pruned("artifacts", total.artifacts);
    crate::metrics::retention_pruned("offers", total.offers);
    if total.total() > 0 {
        tracing::info!(
            audit_events = total.audit_events,
            leases = total.leases,
            artifacts = total.artifacts,
            offers = total.offers,
            "retention: pruned old history"
        );
    }
    Ok(total)
}
