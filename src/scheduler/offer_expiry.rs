//! Duty: offers nobody answered within `OWP_OFFER_TTL` end; their tasks go back to
//! `ready` (no attempt counted). Runs at the lease-expiry interval.

use std::time::Instant;

use crate::store::Db;

use super::BATCH;
use crate::store::offers;
use crate::store::StoreResult;

/// Expires every overdue offer, in batches of `BATCH`, one transaction each.
pub async fn run(pool: &Db) -> StoreResult<u64> {
    let started = Instant::now();
    let mut total = 0;
    loop {
        let n = offers::expire_overdue(pool, BATCH).await?;
        total += n;
        if n < BATCH as u64 {
            break;
        }
    }
    crate::metrics::sweep("offer_expiry", total, started.elapsed());
    Ok(total)
}
