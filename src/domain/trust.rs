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

/// A name (`trusted`), a level (`2`), or v0.1's `maintainer` (`core`).
impl FromStr for TrustTier {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case(super::compat::TIER_MAINTAINER) {
            return Ok(Self::Core);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
