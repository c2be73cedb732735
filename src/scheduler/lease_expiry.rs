//! Duty: leases that ran past their TTL end; their tasks go back to `ready` with
//! `attempt + 1`, or become terminal `failed` at `max_attempts`.

use std::time::Instant;

use crate::store::Db;

use super::BATCH;
use crate::domain::retry::Backoff;
use crate::store::sweeps::{self, Ended};
use crate::store::StoreResult;

/// Expires every overdue lease, in batches of `BATCH` rows, one transaction each.
pub async fn run(pool: &Db, backoff: Backoff) -> StoreResult<Ended> {
    let started = Instant::now();
    let mut total = Ended::default();
    loop {
        let b = sweeps::expire_overdue_leases(pool, BATCH, backoff).await?;
        total.leases += b.leases;
        total.requeued += b.requeued;
        total.failed += b.failed;
        if b.leases < BATCH as u64 {
            break;
        }
    }
    crate::metrics::sweep("lease_expiry", total.leases, started.elapsed());
    crate::metrics::leases_expired(total.leases);
    crate::metrics::requeued("lease_expired", total.requeued);
    Ok(total)
}
