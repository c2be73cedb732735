//! Notifications, as plain rules: which events there are, what a channel may ask for, the
//! body each kind of channel gets, the signature on it, and which addresses a delivery may
//! reach. Every worker is a stranger, and so is what it named itself: nothing it wrote
//! can mention a Slack channel or a Discord role, or smuggle markup into a message.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// The events a channel may ask for.
pub const EVENTS: [&str; 5] = [
    "task_failed",
    "pr_stale",
    "write_back_gave_up",
    "worker_revoked",
    "budget_full",
];

/// Events about the pool as a whole, not one repository: a channel of one repository
/// cannot take them.
pub const POOL_WIDE_EVENTS: [&str; 1] = ["worker_revoked"];

/// What `POST /v1/admin/notifications/{id}/test` sends.
pub const TEST_EVENT: &str = "test";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A JSON document, signed: for anything that verifies `X-OWP-Signature`.
    Webhook,
    /// Slack's incoming webhooks (`{"text": ...}`, mrkdwn escaped).
    Slack,
    /// Discord's webhooks (`{"content": ...}`, no mention resolved).
    Discord,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "webhook" => Some(Self::Webhook),
            "slack" => Some(Self::Slack),
            "discord" => Some(Self::Discord),
            _ => None,
        }
    }
}

/// The longest Discord message.
const DISCORD_MAX: usize = 2000;
/// Slack accepts far more; a notification is a line or two.
const SLACK_MAX: usize = 3000;

/// Why a channel's events are refused (the field is named by the caller).
pub fn check_events(events: &[String], repo_scoped: bool) -> Result<(), String> {
    if events.is_empty() {
        return Err(format!("at least one of {}", EVENTS.join(", ")));
    }
    for e in events {
        if !EVENTS.contains(&e.as_str()) {
            return Err(format!("{e:?} is not an event: {}", EVENTS.join(", ")));
        }
        if repo_scoped && POOL_WIDE_EVENTS.contains(&e.as_str()) {
            return Err(format!(
                "{e} is about the whole pool: only a channel without a repo takes it"
            ));
        }
    }
    Ok(())
}

/// One line a person reads, from the event's facts.
pub fn summary(event: &str, facts: &Value) -> String {
    let s = |k: &str| facts[k].as_str().unwrap_or("?").to_string();
    let n = |k: &str| facts[k].as_i64().unwrap_or(0);
    match event {
        "task_failed" => format!(
            "Task {} in {} failed for good after {} of {} attempts: {}",
            s("task_id"),
            s("repo"),
            n("attempt"),
            n("max_attempts"),
            s("title")
        ),
        "pr_stale" => format!(
            "The PR of task {} in {} has waited for review since {}: {}",
            s("task_id"),
            s("repo"),
            s("pr_opened_at"),
            s("pr_url")
        ),
        "write_back_gave_up" => format!(
            "Writing task {}'s {} back to {} was given up after {} tries: {}",
            s("task_id"),
            s("event"),
            s("issue"),
            n("attempts"),
            s("error")
        ),
        "worker_revoked" => format!(
            "Worker {} ({}, GitHub {}) was revoked",
            s("worker_id"),
            s("name"),
            facts["github_handle"].as_str().unwrap_or("none")
        ),
        "budget_full" => format!(
            "{}'s review budget has been full ({} open) since {}",
            s("repo"),
            n("max_open_prs"),
            s("since")
        ),
        TEST_EVENT => "A test notification from the pool".to_string(),
        other => format!("Event {other}"),
    }
}

/// The body a channel of this kind is sent for one delivery.
pub fn body(kind: Kind, delivery_id: i64, event: &str, created_at: &str, facts: &Value) -> Value {
    match kind {
        Kind::Webhook => json!({
            "id": delivery_id,
            "event": event,
            "created_at": created_at,
            "summary": summary(event, facts),
            "data": facts,
        }),
        Kind::Slack => json!({"text": clip(&slack_escape(&summary(event, facts)), SLACK_MAX)}),
        Kind::Discord => json!({
            "content": clip(&discord_escape(&summary(event, facts)), DISCORD_MAX),
            // no @everyone, role or user mention resolves, whatever a name says
            "allowed_mentions": {"parse": []},
        }),
    }
}

/// Slack's three control characters (`<!channel>`, `<@U123>`, links) become text.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Markdown and mentions shown as typed: `allowed_mentions` already stops the pings, this
/// stops a name from formatting the message or looking like one.
fn discord_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '~' | '`' | '|' | '>' | '<' | '@' | '#' | '[' | ']'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// At most `max` characters, on a character boundary.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if s.len() > i + 1 => format!("{}…", &s[..i]),
        _ => s.to_string(),
    }
}

/// `X-OWP-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. The
/// time is inside the signed text, so a receiver that refuses old stamps refuses replays.
pub fn signature(secret: &str, unix_time: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(unix_time.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={unix_time},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// May a delivery connect to this address? Only to the public internet, unless the
/// operator allows private networks: a scoped admin's URL must not reach the pool's own
/// database, a cloud metadata service or anything else behind its firewall.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// Why a channel's URL is refused, if it is: an http(s) URL without credentials in it,
/// https and a public host unless private networks are allowed. Host names are resolved
/// at delivery and each address checked then too (`notify::client`).
pub fn check_url(raw: &str, allow_private: bool) -> Result<url::Url, String> {
    let u = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(u.scheme(), "https" | "http") {
        return Err(format!("{}: only https", u.scheme()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("carries credentials: put them in the path or query the service gives".into());
    }
    let private = match u.host() {
        None => return Err("has no host".into()),
        Some(url::Host::Ipv4(ip)) => !is_public(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => !is_public(IpAddr::V6(ip)),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".internal")
        }
    };
    if !allow_private {
        if private {
            return Err("points into a private network".into());
        }
        if u.scheme() == "http" {
            return Err("must be https".into());
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["1.1.1.1", "140.82.112.3", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_must_be_https_public_and_without_credentials() {
        assert!(check_url("https://hooks.slack.com/services/T/B/X", false).is_ok());
        for bad in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://localhost:8080/",
            "https://metadata.google.internal/",
            "https://169.254.169.254/latest",
            "https://user:pw@example.com/",
            "ftp://example.com/",
            "not a url",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9/hook", true).is_ok());
    }

    #[test]
    fn names_cannot_mention_or_format() {
        let facts = json!({"worker_id": "w_1", "name": "<!channel> @everyone *x*", "github_handle": "<@U1>"});
        let slack = body(Kind::Slack, 1, "worker_revoked", "", &facts);
        let text = slack["text"].as_str().unwrap();
        assert!(
            !text.contains('<') && text.contains("&lt;!channel&gt;"),
            "{text}"
        );
        let discord = body(Kind::Discord, 1, "worker_revoked", "", &facts);
        assert_eq!(discord["allowed_mentions"]["parse"], json!([]));
        let content = discord["content"].as_str().unwrap();
        assert!(
            content.contains("\\@everyone") && content.contains("\\*x\\*"),
            "{content}"
        );
    }

    #[test]
    fn long_messages_are_clipped_on_a_character() {
        let facts = json!({"task_id": "t", "repo": "r", "title": "é".repeat(5000)});
        let d = body(Kind::Discord, 1, "task_failed", "", &facts);
        assert!(d["content"].as_str().unwrap().chars().count() <= DISCORD_MAX);
        assert_eq!(clip("abc", 3), "abc");
        assert_eq!(clip("abcd", 3), "ab…");
    }

    #[test]
    fn the_signature_covers_time_and_body() {
        let a = signature("s3cret", 1700000000, b"{}");
        assert!(a.starts_with("t=1700000000,v1=") && a.len() == "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("s3cret", 1700000001, b"{}"));
        assert_ne!(a, signature("s3cret", 1700000000, b"{ }"));
        assert_ne!(a, signature("other", 1700000000, b"{}"));
    }

    #[test]
    fn events_are_known_and_pool_wide_ones_need_a_pool_wide_channel() {
        let ev = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_events(&ev(&["task_failed", "worker_revoked"]), false).is_ok());
        assert!(check_events(&ev(&["worker_revoked"]), true).is_err());
        assert!(check_events(&ev(&["nope"]), false).is_err());
        assert!(check_events(&[], false).is_err());
    }
}
