//! Every replica writes the signs of life it heard (`liveness`) in one statement per
//! interval, and once more when it stops, so a steady fleet's requests cost no row write
//! of their own.

use crate::app::AppContext;
use crate::liveness::LivenessStamps;
use crate::store::workers;

/// Writes the stamps every interval until the replica stops, then a last time.
pub async fn run(app: AppContext) {
    let mut tick = tokio::time::interval(LivenessStamps::interval(app.settings.heartbeat_timeout));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => flush(&app).await,
            () = app.stopped() => break,
        }
    }
    flush(&app).await;
}

/// Writes what was heard since the last flush; on failure the stamps go back, to be
/// written next time.
pub async fn flush(app: &AppContext) {
    let ids = app.liveness.take();
    if ids.is_empty() {
        return;
    }
    match workers::stamp_seen(&app.pool, &ids).await {
        Ok(n) => crate::metrics::liveness_stamped(n),
        Err(e) => {
            tracing::warn!(error = %e, workers = ids.len(), "liveness: stamps not written; retrying");
            for id in &ids {
                app.liveness.seen(id);
            }
        }
    }
}
