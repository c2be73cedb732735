//! Typed, prefixed identifiers (`w_`, `t_`, `l_`): opaque on the wire, never mixed up in code.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new id: the prefix and a time-ordered UUIDv7, so b-tree inserts stay local.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        /// Reads as the string it is (SQL parameters, messages); built only on purpose.
        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

prefixed_id!(WorkerId, "w_");
prefixed_id!(TaskId, "t_");
prefixed_id!(LeaseId, "l_");
prefixed_id!(OfferId, "o_");
prefixed_id!(ChannelId, "nc_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_are_unique() {
        let a = TaskId::generate();
        let b = TaskId::generate();
        assert!(a.as_str().starts_with("t_"));
        assert_eq!(a.as_str().len(), 34);
        assert_ne!(a, b);
        assert!(WorkerId::generate().as_str().starts_with("w_"));
        assert!(LeaseId::generate().as_str().starts_with("l_"));
    }
}
