//! How domain enums are stored: as their wire names in `text` columns (the schema's check
//! constraints list the same names), so statuses cross the store boundary typed.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use crate::domain::status::{TaskStatus, WorkerStatus};
use crate::domain::trust::TrustTier;

macro_rules! text_enum {
    ($ty:ty) => {
        impl Type<Postgres> for $ty {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $ty {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let s = <&str as Decode<Postgres>>::decode(value)?;
                s.parse()
                    .map_err(|_| format!("unknown {} {s:?}", stringify!($ty)).into())
            }
        }

        impl Encode<'_, Postgres> for $ty {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.as_str(), buf)
            }
        }
    };
}

text_enum!(TaskStatus);
text_enum!(WorkerStatus);

/// Trust tiers are stored as their level (`smallint` 0-3), so `tier <= trust_tier`
/// compares in SQL.
impl Type<Postgres> for TrustTier {
    fn type_info() -> PgTypeInfo {
        <i16 as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <i16 as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for TrustTier {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let level = <i16 as Decode<Postgres>>::decode(value)?;
        TrustTier::from_level(i64::from(level))
            .ok_or_else(|| format!("unknown trust tier level {level}").into())
    }
}
