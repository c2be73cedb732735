//! The protocol's v0.1 names, accepted beside this service's own (docs/PROTOCOL.md,
//! "Compatibility with v0.1"). Answers always use the service's names; these only widen
//! what a request may say.

/// The v0.1 name of the highest trust tier (`core` here).
pub const TIER_MAINTAINER: &str = "maintainer";

/// The v0.1 analytics periods and the service's names for them.
pub const PERIODS: [(&str, &str); 3] = [
    ("last_7_days", "7d"),
    ("last_30_days", "30d"),
    ("last_90_days", "90d"),
];

/// What an audit filter by a v0.1 event name selects: the service's event kind, and the
/// status the change went to when the v0.1 name means one transition only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditAlias {
    pub kind: &'static str,
    pub to_status: Option<&'static str>,
}

/// The service's events for a v0.1 event name; `None` for any other name (it is then a
/// kind of this service's own, or matches nothing).
pub fn audit_alias(name: &str) -> Option<AuditAlias> {
    let (kind, to_status) = match name {
        "task_assigned" => ("lease_granted", None),
        "task_completed" => ("task_status_changed", Some("completed")),
        "trust_tier_changed" => ("worker_trust_tier_changed", None),
        _ => return None,
    };
    Some(AuditAlias { kind, to_status })
}

/// v0.1's import label: issues carrying it become tasks, beside `OWP_GITHUB_IMPORT_LABEL`'s.
pub const IMPORT_LABEL: &str = "pool:ready";

/// A v0.1 size (`size:M` label, `size: M` in a task file) as estimate points: t-shirt sizes
/// on the usual story-point scale, or a number of points (1-100). Case-insensitive.
pub fn size_points(size: &str) -> Option<i64> {
    let size = size.trim().to_ascii_lowercase();
    let points = match size.as_str() {
        "xs" | "extra-small" | "tiny" => 1,
        "s" | "small" => 2,
        "m" | "medium" => 3,
        "l" | "large" => 5,
        "xl" | "extra-large" | "huge" => 8,
        n => n.parse().ok().filter(|p| (1..=100).contains(p))?,
    };
    Some(points)
}

/// A v0.1 priority name (`priority:high`) as this service's number (higher is claimed
/// first; a task's default is 10, which `medium` and `normal` keep). Case-insensitive.
pub fn priority_value(name: &str) -> Option<i64> {
    let value = match name.trim().to_ascii_lowercase().as_str() {
        "low" => 0,
        "medium" | "normal" => 10,
        "high" => 50,
        "urgent" | "critical" => 100,
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v01_sizes_and_priorities_are_numbers_here() {
        let sizes: Vec<_> = ["XS", "s", "M", "large", "xl", "13", "0", "101", "huge-ish"]
            .iter()
            .map(|s| size_points(s))
            .collect();
        assert_eq!(
            sizes,
            [
                Some(1),
                Some(2),
                Some(3),
                Some(5),
                Some(8),
                Some(13),
                None,
                None,
                None
            ]
        );
        assert_eq!(priority_value("High"), Some(50));
        assert_eq!(priority_value(" low "), Some(0));
        assert_eq!(priority_value("medium"), Some(10), "the default");
        assert_eq!(priority_value("critical"), Some(100));
        assert_eq!(priority_value("12"), None, "numbers are not names");
    }

    #[test]
    fn v01_event_names_select_the_services_events() {
        assert_eq!(
            audit_alias("task_completed"),
            Some(AuditAlias {
                kind: "task_status_changed",
                to_status: Some("completed")
            })
        );
        assert_eq!(audit_alias("task_assigned").unwrap().kind, "lease_granted");
        assert_eq!(
            audit_alias("trust_tier_changed").unwrap().kind,
            "worker_trust_tier_changed"
        );
        // the service's own names are not aliases
        assert_eq!(audit_alias("lease_granted"), None);
    }
}
