//! What went wrong talking to the server, worded for the person at the terminal.

use std::time::Duration;

use reqwest::StatusCode;

use crate::wire::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the server at {url}: {reason} (is it running, and is the URL right?)")]
    Unreachable { url: String, reason: String },
    #[error("{}", describe(*.status, .body, *.retry_after))]
    Api {
        status: u16,
        body: ErrorBody,
        retry_after: Option<Duration>,
    },
    #[error("the server at {url} answered {status} with a body this client cannot read ({reason}); is the URL an OWP server of a compatible version?")]
    Decode {
        url: String,
        status: u16,
        reason: String,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    pub(super) fn from_answer(
        status: StatusCode,
        bytes: &[u8],
        retry_after: Option<Duration>,
    ) -> Self {
        let body = serde_json::from_slice::<ErrorBody>(bytes).unwrap_or_else(|_| ErrorBody {
            // a proxy's page, or nothing: keep what a person can act on
            code: match status.as_u16() {
                401 => "auth_error",
                403 => "forbidden",
                404 => "not_found",
                413 => "payload_too_large",
                429 => "rate_limited",
                502..=504 => "unavailable",
                _ => "internal_error",
            }
            .into(),
            message: format!("HTTP {status}"),
            details: None,
            suggestion: None,
        });
        ClientError::Api {
            status: status.as_u16(),
            body,
            retry_after,
        }
    }

    /// The protocol's error code, for answers from the server.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    pub fn details(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => body.details.as_deref(),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server ended the caller's lease (409 `lease_lost`): stop working on the task.
    pub fn is_lease_lost(&self) -> bool {
        self.code() == Some("conflict") && self.details() == Some("lease_lost")
    }

    /// Worth trying again after a pause: the network, a rate limit, an unavailable server.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Unreachable { .. } => true,
            ClientError::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// How long the server asked to wait (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ClientError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn describe(status: u16, body: &ErrorBody, retry_after: Option<Duration>) -> String {
    let mut text = format!("{} ({status} {})", body.message, body.code);
    if let Some(d) = &body.details {
        text.push_str(&format!(": {d}"));
    }
    let advice = match body.code.as_str() {
        "auth_error" => Some(
            "the server refused the credentials: check the admin token (--admin-token, \
             OWP_ADMIN_TOKEN) or the worker's token in its config file (register again if it \
             was revoked or rotated)"
                .to_string(),
        ),
        "rate_limited" => Some(match retry_after {
            Some(d) => format!("rate limited: try again in {} s", d.as_secs().max(1)),
            None => "rate limited: try again shortly".to_string(),
        }),
        "unavailable" => Some(
            "the server cannot serve now (its database may be down, or it is restarting): \
             try again shortly"
                .to_string(),
        ),
        _ => body.suggestion.clone(),
    };
    if let Some(a) = advice {
        text.push_str(&format!("; {a}"));
    }
    text
}

/// The transport failure without the URL (printed once, by the caller) or a token.
pub(super) fn transport_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    if e.is_connect() {
        return "connection refused or no route".into();
    }
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_limit_says_how_long_to_wait() {
        let body = br#"{"code":"rate_limited","message":"too many requests","details":null,"suggestion":null}"#;
        let e = ClientError::from_answer(
            StatusCode::TOO_MANY_REQUESTS,
            body,
            Some(Duration::from_secs(7)),
        );
        assert!(e.is_transient());
        assert!(e.to_string().contains("try again in 7 s"), "{e}");
    }

    #[test]
    fn a_refused_token_points_at_the_token() {
        let body =
            br#"{"code":"auth_error","message":"invalid token","details":null,"suggestion":null}"#;
        let e = ClientError::from_answer(StatusCode::UNAUTHORIZED, body, None);
        assert!(!e.is_transient());
        assert!(e.to_string().contains("OWP_ADMIN_TOKEN"), "{e}");
    }

    #[test]
    fn lease_lost_is_recognised_and_a_proxy_page_still_has_a_code() {
        let body = br#"{"code":"conflict","message":"lease lost","details":"lease_lost","suggestion":null}"#;
        assert!(ClientError::from_answer(StatusCode::CONFLICT, body, None).is_lease_lost());
        let e =
            ClientError::from_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>", None);
        assert_eq!(e.code(), Some("unavailable"));
        assert!(e.is_transient());
    }
}
