//! The wire protocol's request and response bodies, with their OpenAPI schemas: one
//! definition shared by the handlers and every Rust client of the API (`owp bench`, the
//! tests, the CLI). Field rules live in `domain::input`; these are the shapes.

pub mod actions;
pub mod admin;
pub mod analytics;
pub mod dashboard;
pub mod github;
pub mod notify;
pub mod offers;
pub mod overview;
pub mod reputation;
pub mod stale_prs;
pub mod tasks;
pub mod views;
pub mod work;
pub mod workers;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::status::{TaskStatus, WorkerStatus};

/// Every non-2xx body. `code` is API: clients match on it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One of validation_error, auth_error, forbidden, not_found, conflict,
    /// payload_too_large, rate_limited, unavailable, internal_error.
    pub code: String,
    pub message: String,
    pub details: Option<String>,
    pub suggestion: Option<String>,
}

/// Integer fields accept any JSON number without a fractional part (`3` and `3.0` are the
/// same integer to JSON Schema); anything else is a type error naming the field.
pub fn lenient_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        // beyond i64, still an integer: out of every range we accept
        Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(Some(f as i64)),
        Some(f) if f.fract() == 0.0 => {
            Err(D::Error::custom(format!("integer {n} is out of range")))
        }
        _ => Err(D::Error::custom(format!(
            "invalid type: number {n}, expected an integer"
        ))),
    }
}

/// A string schema listing `names` as its values.
fn enum_schema<'a>(
    names: impl IntoIterator<Item = &'a str>,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(names))
        .description(Some(description))
        .into()
}

/// A skill tag in the OpenAPI document: 1-50 characters, not blank (compared
/// case-insensitively). Written by hand: utoipa cannot put length limits on array items.
pub struct SkillTag;

impl utoipa::PartialSchema for SkillTag {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::domain::input::MAX_SKILL_LEN))
            .pattern(Some(crate::domain::input::NOT_BLANK))
            .into()
    }
}

impl ToSchema for SkillTag {}

/// An id in a list (a worker's, a task's): 1-100 characters, not blank.
pub struct IdItem;

impl utoipa::PartialSchema for IdItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(100))
            .pattern(Some(crate::domain::input::NOT_BLANK))
            .into()
    }
}

impl ToSchema for IdItem {}

/// A time (RFC 3339), or `""` to remove it (in a PATCH).
pub struct TimeOrEmpty;

impl utoipa::PartialSchema for TimeOrEmpty {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        use utoipa::openapi::{ObjectBuilder, OneOfBuilder};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([""])),
            )
            .into()
    }
}

impl ToSchema for TimeOrEmpty {}

/// A repository's name in a list: 1-200 characters, not blank.
pub struct RepoItem;

impl utoipa::PartialSchema for RepoItem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .min_length(Some(1))
            .max_length(Some(200))
            .pattern(Some(crate::domain::input::NOT_BLANK))
            .into()
    }
}

impl ToSchema for RepoItem {}

// The domain's status enums, documented from their own lists so the document cannot drift.
impl utoipa::PartialSchema for TaskStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        enum_schema(
            TaskStatus::ALL.iter().map(|s| s.as_str()),
            "A task's status.",
        )
    }
}

impl ToSchema for TaskStatus {}

impl utoipa::PartialSchema for WorkerStatus {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        enum_schema(
            WorkerStatus::ALL.iter().map(|s| s.as_str()),
            "A worker's own status. A paused worker keeps its leases but gets no new work.",
        )
    }
}

impl ToSchema for WorkerStatus {}

impl utoipa::PartialSchema for crate::domain::trust::TrustTier {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        enum_schema(
            crate::domain::trust::TrustTier::ALL
                .iter()
                .map(|t| t.as_str()),
            "A trust tier: untrusted (0), basic (1), trusted (2), core (3).",
        )
    }
}

impl ToSchema for crate::domain::trust::TrustTier {}

/// A trust tier as a client may send it: a name, or a level 0-3.
pub struct TierInput;

impl utoipa::PartialSchema for TierInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let level = utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(3));
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(enum_schema(
                crate::domain::trust::TrustTier::ALL
                    .iter()
                    .map(|t| t.as_str())
                    .chain([crate::domain::compat::TIER_MAINTAINER]),
                "a tier by name (v0.1's `maintainer` is `core`)",
            ))
            .item(level)
            .description(Some("A trust tier: a name, or its level (0-3)."))
            .into()
    }
}

impl ToSchema for TierInput {}
