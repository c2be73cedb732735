//! `GET /v1/analytics/repositories/{owner}/{repo}`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AnalyticsQuery {
    /// The window, ending now: 7d, 30d (default) or 90d; v0.1's last_7_days, last_30_days
    /// and last_90_days are the same.
    #[param(pattern = "^(7d|30d|90d|last_7_days|last_30_days|last_90_days)$")]
    pub period: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RepoAnalytics {
    pub repo: String,
    /// 7d, 30d or 90d.
    pub period: String,
    pub metrics: RepoMetrics,
}

/// Each figure over the period; definitions in docs/PROTOCOL.md "Repository analytics".
/// Rates are 0-1 (0 with nothing to count); times are seconds, null with nothing to time.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct RepoMetrics {
    pub tasks_created: i64,
    pub tasks_completed: i64,
    pub tasks_merged: i64,
    pub tasks_failed: i64,
    pub avg_completion_time_s: Option<f64>,
    pub p50_completion_time_s: Option<f64>,
    pub p90_completion_time_s: Option<f64>,
    pub pr_merge_rate: f64,
    pub lease_expiry_rate: f64,
    pub worker_utilization: f64,
    pub review_wait_p50_s: Option<f64>,
    /// Median wait from a task's creation to its first lease.
    pub queue_wait_p50_s: Option<f64>,
    /// `review`, `capacity`, `unclear_tasks`, `reliability`: most pressing first.
    pub bottlenecks: Vec<String>,
}
