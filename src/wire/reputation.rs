//! `GET /v1/workers/{worker_id}/reputation`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::trust::TrustTier;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Reputation {
    pub worker_id: String,
    /// 0-100; 50 with no history. Tasks with `min_reputation` above it are not offered to
    /// this worker.
    #[schema(minimum = 0, maximum = 100)]
    pub reputation_score: i16,
    pub trust_tier: TrustTier,
    pub metrics: ReputationMetrics,
}

/// Each figure is defined in docs/PROTOCOL.md "Reputation". Rates are 0-1, and 0 while
/// there is nothing to count.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReputationMetrics {
    /// Delivered (`completed` or `pr_opened`) / attempts that ended by the worker's outcome.
    pub completion_rate: f64,
    /// Delivered within `estimate_points` x `OWP_ON_TIME_PER_POINT` / delivered.
    pub on_time_delivery: f64,
    /// Merged / (merged + closed) of the PRs it opened.
    pub pr_merge_rate: f64,
    /// Expired (lease timed out, or the worker went offline) / attempts.
    pub expiry_rate: f64,
    /// Attempts that ended by the worker's outcome: delivered, failed or expired.
    pub total_tasks: i64,
    /// Mean of the admins' 1-5 ratings of its merged PRs; null when none was rated.
    pub avg_pr_quality: Option<f64>,
}
