//! Parsers of setting values (sizes, tier maps, origins) and the replica's default id.

use super::*;

use std::time::Duration;

/// A trust tier by name or level (`domain::trust::TrustTier` names them; config is a leaf).
pub(super) fn parse_tier_counts(s: &str) -> Result<TierCaps<i32>, String> {
    TierCaps::parse(s, |v| {
        v.parse::<i32>()
            .ok()
            .filter(|n| (1..=10_000).contains(n))
            .ok_or_else(|| "must be a count from 1 to 10000".to_string())
    })
}

pub(super) fn parse_tier_durations(s: &str) -> Result<TierCaps<Duration>, String> {
    TierCaps::parse(s, |v| {
        humantime::parse_duration(v)
            .ok()
            .filter(|d| *d >= SECOND)
            .ok_or_else(|| "must be a duration of at least 1s, e.g. 1h".to_string())
    })
}

pub(crate) fn parse_trust_level(s: &str) -> Result<i16, String> {
    const NAMES: [&str; 4] = ["untrusted", "basic", "trusted", "core"];
    let s = s.trim();
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .map(|i| i as i16)
        .or_else(|| s.parse::<i16>().ok().filter(|l| (0..=3).contains(l)))
        .ok_or_else(|| format!("unknown trust tier {s:?}: untrusted, basic, trusted or core (0-3)"))
}

/// `https://host[:port]` or `http://…`, nothing after: what a browser sends as `Origin`.
pub(super) fn is_origin(s: &str) -> bool {
    match url::Url::parse(s) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && s.trim_end_matches('/') == u.origin().ascii_serialization()
        }
        Err(_) => false,
    }
}

pub(super) fn default_replica_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|| "owp".into());
    format!("{host}-{}", std::process::id())
}

/// `65536`, `64KiB`, `1MiB` (also `KB`/`MB`, taken as binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("not a size: {s}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "kb" | "k" => 1024,
        "mib" | "mb" | "m" => 1024 * 1024,
        _ => return Err(format!("unknown size unit in {s}: use bytes, KiB or MiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s}"))
}

/// Hides the password in a database URL, for logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "<unparseable url>".into(),
    }
}
