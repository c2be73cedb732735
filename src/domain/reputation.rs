//! Reputation: what a worker's attempts came to, and the score (0-100) that tasks'
//! `min_reputation` is compared with. The counters are kept by the database (see migration
//! `0005_reputation`); this module turns them into the metrics and the score that
//! docs/PROTOCOL.md "Reputation" defines, and reads the automatic promotion rule.

use std::fmt;
use std::str::FromStr;

/// A worker's counters. `attempts` = `delivered` + `failed` + `expired`: attempts that
/// ended by the worker's own outcome (releases and admin actions do not count).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub attempts: i64,
    /// Ended by `completed` or `pr_opened`.
    pub delivered: i64,
    /// Delivered within `estimate_points` x `OWP_ON_TIME_PER_POINT` of the grant.
    pub on_time: i64,
    pub failed: i64,
    /// Ended by the server: the lease expired, or the worker went offline.
    pub expired: i64,
    pub prs_merged: i64,
    pub prs_closed: i64,
    pub quality_sum: i64,
    pub quality_count: i64,
}

/// The score of a worker with no history.
pub const NEUTRAL_SCORE: i16 = 50;

/// The figures `GET /v1/workers/{id}/reputation` shows. Rates are 0 when there is nothing
/// to count yet (their denominator is 0); the score is then neutral.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    pub completion_rate: f64,
    pub on_time_delivery: f64,
    pub pr_merge_rate: f64,
    pub expiry_rate: f64,
    pub total_tasks: i64,
    pub avg_pr_quality: Option<f64>,
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A rate pulled towards 1/2 by one success and one failure that never happened (Laplace):
/// a worker with little history scores near the neutral middle, one bad or good attempt
/// does not swing it to an end.
fn smoothed(part: f64, whole: f64) -> f64 {
    (part + 1.0) / (whole + 2.0)
}

impl Counts {
    pub fn metrics(&self) -> Metrics {
        Metrics {
            completion_rate: ratio(self.delivered, self.attempts),
            on_time_delivery: ratio(self.on_time, self.delivered),
            pr_merge_rate: ratio(self.prs_merged, self.prs_merged + self.prs_closed),
            expiry_rate: ratio(self.expired, self.attempts),
            total_tasks: self.attempts,
            avg_pr_quality: (self.quality_count > 0)
                .then(|| self.quality_sum as f64 / self.quality_count as f64),
        }
    }

    /// 0-100: 40 % completion, 20 % on-time delivery, 30 % PR merge rate, 10 % PR quality,
    /// each rate smoothed towards 1/2; 50 with no history.
    pub fn score(&self) -> i16 {
        let completion = smoothed(self.delivered as f64, self.attempts as f64);
        let on_time = smoothed(self.on_time as f64, self.delivered as f64);
        let merged = smoothed(
            self.prs_merged as f64,
            (self.prs_merged + self.prs_closed) as f64,
        );
        // a rating of 1..5 is 0..1 of a success
        let quality = smoothed(
            (self.quality_sum - self.quality_count) as f64 / 4.0,
            self.quality_count as f64,
        );
        let s = 0.4 * completion + 0.2 * on_time + 0.3 * merged + 0.1 * quality;
        (s * 100.0).round().clamp(0.0, 100.0) as i16
    }
}

/// One condition of a promotion rule, e.g. `3 merged` or `0.8 completion`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Condition {
    /// At least this many merged PRs.
    Merged(i64),
    /// At least this many delivered attempts.
    Delivered(i64),
    /// A completion rate (0-1) of at least this.
    Completion(f64),
    /// An on-time delivery rate (0-1) of at least this.
    OnTime(f64),
    /// A score of at least this.
    Score(i16),
}

/// `OWP_PROMOTE_BASIC_AFTER`: every condition must hold, e.g. `3 merged, 0.8 completion`.
#[derive(Clone, Debug, PartialEq)]
pub struct PromotionRule {
    pub conditions: Vec<Condition>,
}

impl PromotionRule {
    pub fn is_met(&self, c: &Counts) -> bool {
        let m = c.metrics();
        self.conditions.iter().all(|cond| match *cond {
            Condition::Merged(n) => c.prs_merged >= n,
            Condition::Delivered(n) => c.delivered >= n,
            Condition::Completion(r) => c.attempts > 0 && m.completion_rate >= r,
            Condition::OnTime(r) => c.delivered > 0 && m.on_time_delivery >= r,
            Condition::Score(s) => c.score() >= s,
        })
    }
}

const RULE_HELP: &str = "comma-separated conditions `<number> <measure>`, measures: \
    merged, delivered (counts), completion, on_time (rates 0-1), score (0-100); \
    e.g. `3 merged, 0.8 completion`";

impl FromStr for PromotionRule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut conditions = Vec::new();
        for term in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad = || format!("bad condition {term:?}: {RULE_HELP}");
            let (num, what) = term.split_once(char::is_whitespace).ok_or_else(bad)?;
            let count = || num.parse::<i64>().ok().filter(|n| *n >= 0);
            let rate = || num.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r));
            let cond = match what.trim() {
                "merged" => Condition::Merged(count().ok_or_else(bad)?),
                "delivered" => Condition::Delivered(count().ok_or_else(bad)?),
                "completion" => Condition::Completion(rate().ok_or_else(bad)?),
                "on_time" => Condition::OnTime(rate().ok_or_else(bad)?),
                "score" => Condition::Score(
                    num.parse::<i16>()
                        .ok()
                        .filter(|n| (0..=100).contains(n))
                        .ok_or_else(bad)?,
                ),
                _ => return Err(bad()),
            };
            conditions.push(cond);
        }
        if conditions.is_empty() {
            return Err(format!("empty promotion rule: {RULE_HELP}"));
        }
        Ok(Self { conditions })
    }
}

impl fmt::Display for PromotionRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.conditions.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match c {
                Condition::Merged(n) => write!(f, "{n} merged")?,
                Condition::Delivered(n) => write!(f, "{n} delivered")?,
                Condition::Completion(r) => write!(f, "{r} completion")?,
                Condition::OnTime(r) => write!(f, "{r} on_time")?,
                Condition::Score(s) => write!(f, "{s} score")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(delivered: i64, failed: i64, expired: i64) -> Counts {
        Counts {
            attempts: delivered + failed + expired,
            delivered,
            on_time: delivered,
            failed,
            expired,
            ..Counts::default()
        }
    }

    #[test]
    fn no_history_is_neutral() {
        let c = Counts::default();
        assert_eq!(c.score(), NEUTRAL_SCORE);
        let m = c.metrics();
        assert_eq!(m.total_tasks, 0);
        assert_eq!(m.completion_rate, 0.0);
        assert_eq!(m.avg_pr_quality, None);
    }

    #[test]
    fn metrics_are_plain_ratios() {
        let c = Counts {
            attempts: 5,
            delivered: 4,
            on_time: 3,
            failed: 0,
            expired: 1,
            prs_merged: 2,
            prs_closed: 1,
            quality_sum: 9,
            quality_count: 2,
        };
        let m = c.metrics();
        assert_eq!(m.completion_rate, 0.8);
        assert_eq!(m.on_time_delivery, 0.75);
        assert!((m.pr_merge_rate - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(m.expiry_rate, 0.2);
        assert_eq!(m.total_tasks, 5);
        assert_eq!(m.avg_pr_quality, Some(4.5));
    }

    #[test]
    fn score_rewards_delivery_and_punishes_expiry() {
        // 3 delivered on time, 3 merged, no ratings: .4*.8 + .2*.8 + .3*.8 + .1*.5 = .77
        let good = Counts {
            prs_merged: 3,
            ..counts(3, 0, 0)
        };
        assert_eq!(good.score(), 77);
        // ten expired leases: .4*(1/12) + .2*.5 + .3*.5 + .1*.5 = .333
        assert_eq!(counts(0, 0, 10).score(), 33);
        assert!(counts(1, 0, 0).score() > NEUTRAL_SCORE);
        assert!(counts(0, 1, 0).score() < NEUTRAL_SCORE);
        // all fives and all merged, a long history: near the top
        let best = Counts {
            prs_merged: 100,
            quality_sum: 500,
            quality_count: 100,
            ..counts(100, 0, 0)
        };
        assert_eq!(best.score(), 99);
    }

    #[test]
    fn promotion_rules_parse_and_apply() {
        let rule: PromotionRule = "3 merged, 0.8 completion".parse().unwrap();
        assert_eq!(
            rule.conditions,
            vec![Condition::Merged(3), Condition::Completion(0.8)]
        );
        assert_eq!(rule.to_string(), "3 merged, 0.8 completion");
        let mut c = Counts {
            prs_merged: 3,
            ..counts(4, 1, 0)
        };
        assert!(rule.is_met(&c));
        c.expired = 1;
        c.attempts += 1; // 4 of 6
        assert!(!rule.is_met(&c));
        assert!(!rule.is_met(&Counts::default()));
        for bad in [
            "",
            "3",
            "merged 3",
            "1.5 completion",
            "-1 merged",
            "3 stars",
            "101 score",
        ] {
            assert!(bad.parse::<PromotionRule>().is_err(), "{bad:?}");
        }
        let r: PromotionRule = "60 score, 2 delivered, 0.5 on_time".parse().unwrap();
        assert!(r.is_met(&counts(2, 0, 0)));
    }
}
