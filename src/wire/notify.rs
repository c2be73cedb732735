//! Notification channels and their deliveries, as admins manage and see them
//! (`/v1/admin/notifications`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `POST /v1/admin/notifications`: a channel the pool tells about some events.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelRequest {
    /// Unique, 1-100 characters.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// `webhook` (a signed JSON document), `slack` or `discord` (their incoming webhooks).
    #[schema(pattern = "^(webhook|slack|discord)$")]
    pub kind: String,
    /// https, on a public address (unless the operator allows private networks).
    #[schema(min_length = 1, max_length = 2000)]
    pub url: String,
    /// Any of `task_failed`, `pr_stale`, `write_back_gave_up`, `worker_revoked`,
    /// `budget_full`.
    #[schema(min_items = 1, max_items = 5)]
    pub events: Vec<String>,
    /// Only this repository's events; omitted: every repository's, and the pool-wide
    /// ones (`worker_revoked`). A repository-scoped token must name one of its own.
    #[serde(default)]
    pub repo: Option<String>,
}

/// A channel, as listed. Its URL shows only scheme and host: Slack's and Discord's
/// carry their credential in the path.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Channel {
    pub id: String,
    pub name: String,
    pub kind: String,
    /// `https://hooks.slack.com/…`
    pub url: String,
    pub events: Vec<String>,
    pub repo: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Notifications waiting for delivery.
    pub pending: i64,
    /// Notifications given up.
    pub failed: i64,
    pub last_delivered_at: Option<DateTime<Utc>>,
}

/// `POST /v1/admin/notifications` (201): the channel, and the secret its deliveries are
/// signed with; it is never shown again.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelCreated {
    pub channel: Channel,
    /// `X-OWP-Signature: t=<unix time>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
    pub secret: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChannelList {
    pub channels: Vec<Channel>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// `pending` (default), `failed` (given up) or `delivered`.
    #[param(pattern = "^(pending|failed|delivered)$")]
    pub state: Option<String>,
    /// Only this channel's.
    pub channel: Option<String>,
    /// 1-500, default 100.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// One notification to one channel, and how its delivery stands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Delivery {
    pub id: i64,
    pub channel_id: String,
    pub event: String,
    pub repo: Option<String>,
    /// What the message says.
    pub summary: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    /// While pending: not before this.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub gave_up_at: Option<DateTime<Utc>>,
    /// The receiver's last answer (`HTTP 500`, a timeout, a refused address).
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
}

/// `POST /v1/admin/notifications/{id}/test` and `.../deliveries/{id}/retry` (202): the
/// delivery that will be (re)tried.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeliveryQueued {
    pub delivery_id: i64,
}
