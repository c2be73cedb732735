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

#[cfg(test)]
mod tests {
    use super::*;

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
