//! Trust tiers: who may hold sensitive tasks. A worker may hold a task whose `tier` is at
//! most its own trust tier.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustTier {
    Untrusted,
    Basic,
    Trusted,
    Core,
}

impl TrustTier {
    pub const ALL: [TrustTier; 4] = [Self::Untrusted, Self::Basic, Self::Trusted, Self::Core];

    pub fn level(self) -> i16 {
        match self {
            Self::Untrusted => 0,
            Self::Basic => 1,
            Self::Trusted => 2,
            Self::Core => 3,
        }
    }

    pub fn from_level(level: i64) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|t| i64::from(t.level()) == level)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Untrusted => "untrusted",
            Self::Basic => "basic",
            Self::Trusted => "trusted",
            Self::Core => "core",
        }
    }
}

impl fmt::Display for TrustTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name (`trusted`) or a level (`2`).
impl FromStr for TrustTier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .or_else(|| s.parse::<i64>().ok().and_then(Self::from_level))
            .ok_or_else(|| {
                format!(
                    "unknown trust tier {s:?}: untrusted (0), basic (1), trusted (2) or core (3)"
                )
            })
    }
}

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
            let tier: TrustTier = tier.parse()?;
            caps[tier.level() as usize] =
                Some(value(v.trim()).map_err(|e| format!("{entry:?}: {e}"))?);
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

    #[test]
    fn tiers_read_by_name_or_level() {
        assert_eq!("trusted".parse::<TrustTier>(), Ok(TrustTier::Trusted));
        assert_eq!("CORE".parse::<TrustTier>(), Ok(TrustTier::Core));
        assert_eq!("1".parse::<TrustTier>(), Ok(TrustTier::Basic));
        assert!("4".parse::<TrustTier>().is_err());
        assert!("admin".parse::<TrustTier>().is_err());
        for t in TrustTier::ALL {
            assert_eq!(TrustTier::from_level(i64::from(t.level())), Some(t));
            assert_eq!(t.as_str().parse::<TrustTier>(), Ok(t));
        }
        assert!(TrustTier::Untrusted < TrustTier::Core);
    }
}
