//! Notifications: how often the leader delivers, how hard it tries, when a full budget is
//! worth a word, and whether channels may point into private networks. Flattened into
//! `Settings`.

use std::time::Duration;

use clap::Args;

use super::{duration_in, in_range, DAY, HOUR, MS, SECOND};

#[derive(Clone, Debug, Args)]
pub struct NotifySettings {
    /// How often the leader delivers pending notifications and looks for stale PRs and
    /// full budgets.
    #[arg(long, env = "OWP_NOTIFY_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub notify_interval: Duration,

    /// Tries of one notification before it is given up (and shown as failed).
    #[arg(long, env = "OWP_NOTIFY_MAX_ATTEMPTS", default_value_t = 8)]
    pub notify_max_attempts: i32,

    /// How long one delivery may take.
    #[arg(long, env = "OWP_NOTIFY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub notify_timeout: Duration,

    /// A repository's review budget full for this long is announced (`budget_full`).
    #[arg(long, env = "OWP_NOTIFY_BUDGET_FULL_AFTER", default_value = "4h", value_parser = humantime::parse_duration)]
    pub notify_budget_full_after: Duration,

    /// Let channels reach private, loopback and link-local addresses, and plain http: for
    /// a receiver inside the operator's own network. Off, a scoped admin's URL cannot
    /// reach the pool's database or a metadata service.
    #[arg(long, env = "OWP_NOTIFY_ALLOW_PRIVATE", default_value_t = false)]
    pub notify_allow_private: bool,
}

impl NotifySettings {
    pub fn validate(&self) -> Result<(), String> {
        duration_in("OWP_NOTIFY_INTERVAL", self.notify_interval, 10 * MS, HOUR)?;
        in_range(
            "OWP_NOTIFY_MAX_ATTEMPTS",
            usize::try_from(self.notify_max_attempts).unwrap_or(0),
            1,
            100,
        )?;
        duration_in(
            "OWP_NOTIFY_TIMEOUT",
            self.notify_timeout,
            SECOND,
            5 * 60 * SECOND,
        )?;
        duration_in(
            "OWP_NOTIFY_BUDGET_FULL_AFTER",
            self.notify_budget_full_after,
            SECOND,
            30 * DAY,
        )?;
        Ok(())
    }
}
