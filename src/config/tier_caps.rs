//! Per-tier caps (`OWP_TIER_MAX_CONCURRENT`, `OWP_TIER_LEASE_TTL`): settings, read by the
//! claim and the report.

/// Per-tier caps on what a worker's own declaration can claim (`OWP_TIER_MAX_CONCURRENT`,
/// `OWP_TIER_LEASE_TTL`): a stranger declares its capacity, the pool decides how much of
/// it an unproven worker may use. A tier not named is not capped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TierCaps<T> {
    caps: [Option<T>; 4],
}

impl<T: Copy + Ord> TierCaps<T> {
    /// The cap for a tier level, if any.
    pub fn cap(&self, level: i16) -> Option<T> {
        usize::try_from(level)
            .ok()
            .and_then(|i| self.caps.get(i).copied().flatten())
    }

    /// `declared`, capped by the tier's limit.
    pub fn apply(&self, level: i16, declared: T) -> T {
        self.cap(level).map_or(declared, |c| c.min(declared))
    }

    /// `untrusted:2,basic:5`: tier names (or levels) and values, comma-separated; empty
    /// for no caps.
    pub fn parse(s: &str, value: impl Fn(&str) -> Result<T, String>) -> Result<Self, String> {
        let mut caps = [None; 4];
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tier, v) = entry
                .split_once(':')
                .ok_or_else(|| format!("{entry:?}: expected tier:value, e.g. untrusted:2"))?;
            let level = super::parse_trust_level(tier)?;
            caps[level as usize] = Some(value(v.trim()).map_err(|e| format!("{entry:?}: {e}"))?);
        }
        Ok(Self { caps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tier_caps_bound_a_declaration_for_the_named_tiers_only() {
        let caps = TierCaps::parse("untrusted:2, basic:5,2:20", |v| {
            v.parse::<i32>().map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(caps.apply(0, 100), 2);
        assert_eq!(caps.apply(1, 3), 3);
        assert_eq!(caps.apply(2, 100), 20);
        assert_eq!(caps.apply(3, 100), 100, "core is not named: not capped");
        assert_eq!(caps.apply(9, 7), 7);
        assert!(
            TierCaps::parse("root:1", |v| v.parse::<i32>().map_err(|e| e.to_string())).is_err()
        );
        assert!(
            TierCaps::parse("untrusted", |v| v.parse::<i32>().map_err(|e| e.to_string())).is_err()
        );
        assert!(TierCaps::parse("untrusted:x", |v| v
            .parse::<i32>()
            .map_err(|e| e.to_string()))
        .is_err());
        assert_eq!(
            TierCaps::<i32>::parse("", |_| Ok(0)).unwrap(),
            TierCaps::default()
        );
    }
}
