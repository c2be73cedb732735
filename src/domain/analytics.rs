//! Repository analytics: the periods a report may cover, and the rules that name a
//! repo's bottlenecks from its figures (docs/PROTOCOL.md "Repository analytics").

use std::str::FromStr;
use std::time::Duration;

/// The window a report covers, ending now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Week,
    Month,
    Quarter,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Week => "7d",
            Self::Month => "30d",
            Self::Quarter => "90d",
        }
    }

    pub fn duration(self) -> Duration {
        let days = match self {
            Self::Week => 7,
            Self::Month => 30,
            Self::Quarter => 90,
        };
        Duration::from_secs(days * 86_400)
    }
}

/// `7d`, `30d`, `90d`, or v0.1's `last_7_days`, `last_30_days`, `last_90_days`.
impl FromStr for Period {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = super::compat::PERIODS
            .iter()
            .find(|(v01, _)| *v01 == s)
            .map_or(s, |(_, ours)| ours);
        match s {
            "7d" => Ok(Self::Week),
            "30d" => Ok(Self::Month),
            "90d" => Ok(Self::Quarter),
            _ => Err("one of 7d, 30d, 90d (or last_7_days, last_30_days, last_90_days)"),
        }
    }
}

/// What the bottleneck rules look at.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Signals {
    /// Median seconds from a lease's grant to its delivery.
    pub work_p50_s: Option<f64>,
    /// Median seconds from a PR's opening to its merge or close.
    pub review_wait_p50_s: Option<f64>,
    /// Median seconds from a task's creation to its first lease.
    pub queue_wait_p50_s: Option<f64>,
    /// Right now: every review slot is taken and ready tasks wait for one.
    pub budget_full_with_ready: bool,
    pub lease_expiry_rate: f64,
    /// Offers of its tasks rejected as `unclear_requirements`, and all rejections.
    pub unclear_rejections: i64,
    pub rejections: i64,
}

/// Expired leases above this share of ended leases name `reliability`.
const EXPIRY_ALARM: f64 = 0.25;

/// The repo's bottlenecks, most pressing first:
/// - `review`: PRs wait longer for review than the work took (median against median), or
///   every review slot is taken while ready tasks wait;
/// - `capacity`: tasks wait longer for a first worker than the work takes, while review
///   slots are free;
/// - `unclear_tasks`: at least 3 offer rejections say `unclear_requirements`, and they
///   are at least a quarter of all rejections;
/// - `reliability`: more than a quarter of the leases that ended, expired.
pub fn bottlenecks(s: &Signals) -> Vec<&'static str> {
    let mut out = Vec::new();
    let slower = |wait: Option<f64>| matches!((wait, s.work_p50_s), (Some(w), Some(p)) if w > p);
    if s.budget_full_with_ready || slower(s.review_wait_p50_s) {
        out.push("review");
    }
    if !s.budget_full_with_ready && slower(s.queue_wait_p50_s) {
        out.push("capacity");
    }
    if s.unclear_rejections >= 3 && s.unclear_rejections * 4 >= s.rejections {
        out.push("unclear_tasks");
    }
    if s.lease_expiry_rate > EXPIRY_ALARM {
        out.push("reliability");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_and_last() {
        assert_eq!("7d".parse(), Ok(Period::Week));
        assert_eq!(" 90d".parse::<Period>().map(Period::as_str), Ok("90d"));
        assert_eq!(Period::Month.duration(), Duration::from_secs(30 * 86_400));
        for bad in ["", "1d", "30", "7D", "week"] {
            assert!(bad.parse::<Period>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_healthy_repo_has_no_bottleneck() {
        let s = Signals {
            work_p50_s: Some(3600.0),
            review_wait_p50_s: Some(1800.0),
            queue_wait_p50_s: Some(60.0),
            lease_expiry_rate: 0.1,
            ..Signals::default()
        };
        assert!(bottlenecks(&s).is_empty());
        assert!(
            bottlenecks(&Signals::default()).is_empty(),
            "no data, no verdict"
        );
    }

    #[test]
    fn each_rule_names_its_bottleneck() {
        let base = Signals {
            work_p50_s: Some(3600.0),
            ..Signals::default()
        };
        let slow_review = Signals {
            review_wait_p50_s: Some(7200.0),
            ..base
        };
        assert_eq!(bottlenecks(&slow_review), ["review"]);
        let full = Signals {
            budget_full_with_ready: true,
            queue_wait_p50_s: Some(9999.0),
            ..base
        };
        // tasks queue because slots are full: that is review, not a lack of workers
        assert_eq!(bottlenecks(&full), ["review"]);
        let starved = Signals {
            queue_wait_p50_s: Some(7200.0),
            ..base
        };
        assert_eq!(bottlenecks(&starved), ["capacity"]);
        let unclear = Signals {
            unclear_rejections: 3,
            rejections: 12,
            ..base
        };
        assert_eq!(bottlenecks(&unclear), ["unclear_tasks"]);
        let few = Signals {
            unclear_rejections: 3,
            rejections: 13,
            ..base
        };
        assert!(bottlenecks(&few).is_empty());
        let flaky = Signals {
            lease_expiry_rate: 0.3,
            ..slow_review
        };
        assert_eq!(bottlenecks(&flaky), ["review", "reliability"]);
    }
}
