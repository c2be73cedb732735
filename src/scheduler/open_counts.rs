//! Every replica folds the repos' open-task changes into their counts once a second
//! (store::open_counts), so a poll's free-slot read stays about a second of changes long.
//! Not a leader duty: compactions at once on several replicas take distinct rows, and a
//! pool without a leader must not let the changes pile up.

use std::time::Duration;

use crate::app::AppContext;
use crate::store::open_counts;

const EVERY: Duration = Duration::from_secs(1);

/// Compacts every second until the replica stops.
pub async fn run(app: AppContext) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = open_counts::compact(&app.pool).await {
                    // the changes stay and are folded next time; only the read grows
                    tracing::warn!(error = %e, "open counts: compaction failed");
                }
            }
            () = app.stopped() => return,
        }
    }
}
