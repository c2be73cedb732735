//! The dashboard's own routes: sign-in (an admin token for a session cookie) and the
//! throughput series.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    /// An admin token (as in X-Admin-Token); exchanged once, never stored by the browser.
    #[schema(min_length = 1, max_length = 500)]
    pub admin_token: String,
}

/// The browser's session (the cookie itself is HttpOnly); the rest is null when not
/// signed in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionInfo {
    pub signed_in: bool,
    /// `admin:<name>` or `admin`: the audit log's name for this session's actions.
    pub actor: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Send it as `X-OWP-CSRF` with every action (POST, PATCH, DELETE) made with the cookie.
    pub csrf: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThroughputQuery {
    /// 1-1440, default 60.
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<i64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Minute {
    /// The minute's start.
    pub at: DateTime<Utc>,
    /// Leases granted.
    pub claimed: i64,
    /// Tasks completed or merged.
    pub completed: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Throughput {
    /// Oldest first; every minute of the window.
    pub minutes: Vec<Minute>,
}
