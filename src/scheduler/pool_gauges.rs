//! Every replica reads the pool overview every `OWP_GAUGES_INTERVAL` and sets the
//! pool-wide gauges from it, so a scrape never touches the database (many scrapers, or a
//! slow database, cannot take connections from workers).

use std::time::Duration;

use crate::app::AppContext;
use crate::domain::status::TaskStatus;
use crate::store::overview;

/// A read slower than this counts as the database being down, for `owp_db_up`.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Refreshes at once, then every interval, until the replica stops.
pub async fn run(app: AppContext) {
    let mut tick = tokio::time::interval(app.settings.gauges_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => refresh(&app).await,
            () = app.stopped() => return,
        }
    }
}

/// One refresh: the overview in one read, bounded.
pub async fn refresh(app: &AppContext) {
    let read = overview::read_overview(
        &app.pool,
        app.settings.heartbeat_timeout,
        app.settings.pr_stale_after,
    );
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(Ok(o)) => {
            crate::metrics::db_up(true);
            for st in TaskStatus::ALL {
                crate::metrics::tasks_in_status(st.as_str(), o.tasks(st));
            }
            crate::metrics::workers_online(o.workers_online);
            for r in &o.repositories {
                crate::metrics::repo_slots(
                    &r.repo,
                    r.current_open_prs,
                    r.max_open_prs,
                    r.stale_prs,
                );
            }
            crate::metrics::oldest_ready(o.oldest_ready_age_secs);
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "pool gauges: overview unavailable");
            crate::metrics::db_up(false);
        }
        Err(_) => {
            tracing::warn!("pool gauges: overview read timed out");
            crate::metrics::db_up(false);
        }
    }
}
