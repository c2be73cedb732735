//! Input rules shared by the endpoints: lengths, ranges, skill normalisation, handles, URLs.
//! Each failure names the field, so clients see `details: "skills[3]: too long"`.

use std::collections::HashSet;

/// A rejected field: becomes a 400 `validation_error` with `details = "field: message"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field with its place in a bulk array: `[3].title`.
    pub fn at_index(self, i: usize) -> Self {
        Self::new(format!("[{i}].{}", self.field), self.message)
    }

    pub fn details(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

pub type Checked<T> = Result<T, Invalid>;

/// A required string of `min..=max` characters (Unicode scalar values) as sent, not blank;
/// stored trimmed. Counting as sent keeps the server and the OpenAPI `maxLength` in step.
pub fn text(field: &str, value: &str, min: usize, max: usize) -> Checked<String> {
    no_nul(field, value)?;
    let n = value.chars().count();
    if min > 0 && is_blank(value) {
        return Err(Invalid::new(field, "must not be empty or blank"));
    }
    if n < min {
        return Err(Invalid::new(
            field,
            format!("must be at least {min} characters"),
        ));
    }
    if n > max {
        return Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.trim().to_string())
}

/// An optional string: missing, null or blank is `None`; at most `max` characters as sent.
pub fn optional_text(field: &str, value: Option<&str>, max: usize) -> Checked<Option<String>> {
    match value {
        None => Ok(None),
        Some(v) if v.chars().count() > max => Err(Invalid::new(
            field,
            format!("must be at most {max} characters"),
        )),
        Some(v) if is_blank(v) => Ok(None),
        Some(v) => no_nul(field, v).map(|()| Some(v.trim().to_string())),
    }
}

/// An integer within `min..=max`, or `default` when absent.
pub fn int_in(field: &str, value: Option<i64>, default: i64, min: i64, max: i64) -> Checked<i32> {
    let v = value.unwrap_or(default);
    if !(min..=max).contains(&v) {
        return Err(Invalid::new(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(i32::try_from(v).expect("range checked above fits i32"))
}

/// PostgreSQL text and jsonb cannot hold NUL: refuse it here, naming the field.
fn no_nul(field: &str, value: &str) -> Checked<()> {
    if value.contains('\0') {
        return Err(Invalid::new(
            field,
            "must not contain NUL (\\u0000) characters",
        ));
    }
    Ok(())
}

/// Blank: nothing but white space, as Rust (Unicode White_Space) or JSON Schema's `\s`
/// (ECMAScript, which adds U+FEFF) count it. The OpenAPI document's `NOT_BLANK` pattern
/// says the same, so a client that validates against the document and this server agree.
pub fn is_blank(value: &str) -> bool {
    value.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
}

/// The OpenAPI pattern of a non-blank string (see `is_blank`): ECMAScript's `\s` lacks
/// U+0085, which Rust counts as white space.
pub const NOT_BLANK: &str = r"[^\s\u0085]";

pub const MAX_SKILLS: usize = 50;
pub const MAX_SKILL_LEN: usize = 50;

/// Skills are tags: trimmed, lower-cased, de-duplicated in first-seen order, 1-50 chars, ≤ 50.
pub fn skills(field: &str, tags: &[String]) -> Checked<Vec<String>> {
    if tags.len() > MAX_SKILLS {
        return Err(Invalid::new(field, format!("at most {MAX_SKILLS} tags")));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(tags.len());
    for (i, tag) in tags.iter().enumerate() {
        let tag = text(
            &format!("{field}[{i}]"),
            &tag.to_lowercase(),
            1,
            MAX_SKILL_LEN,
        )?;
        if seen.insert(tag.clone()) {
            out.push(tag);
        }
    }
    Ok(out)
}

/// Names (repositories, worker ids): at most `max` of 1-`max_len` characters each,
/// de-duplicated in order.
pub fn text_list(
    field: &str,
    names: &[String],
    max: usize,
    max_len: usize,
) -> Checked<Vec<String>> {
    if names.len() > max {
        return Err(Invalid::new(field, format!("at most {max} entries")));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let name = text(&format!("{field}[{i}]"), name, 1, max_len)?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// An RFC 3339 time, e.g. `2026-12-24T09:00:00Z`.
pub fn timestamp(field: &str, value: &str) -> Checked<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| Invalid::new(field, "must be an RFC 3339 time, e.g. 2026-12-24T09:00:00Z"))
}

/// A trust tier exactly as the document says (TierInput): a lower-case name (v0.1's
/// `maintainer` is `core`), or an integer level 0-3.
pub fn trust_tier(field: &str, value: &serde_json::Value) -> Checked<super::trust::TrustTier> {
    use super::trust::TrustTier;
    match value {
        serde_json::Value::String(s) if s == super::compat::TIER_MAINTAINER => {
            Some(TrustTier::Core)
        }
        serde_json::Value::String(s) => TrustTier::ALL.into_iter().find(|t| t.as_str() == s),
        serde_json::Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0)
            .and_then(|f| TrustTier::from_level(f as i64)),
        _ => None,
    }
    .ok_or_else(|| {
        Invalid::new(
            field,
            "must be untrusted, basic, trusted or core (v0.1: maintainer), or a level 0-3",
        )
    })
}

/// GitHub's login rules: 1-39 ASCII letters, digits or single inner hyphens.
pub fn github_handle(field: &str, value: Option<&str>) -> Checked<Option<String>> {
    let Some(h) = value.filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let ok = h.len() <= 39
        && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !h.starts_with('-')
        && !h.ends_with('-')
        && !h.contains("--");
    if ok {
        Ok(Some(h.to_string()))
    } else {
        Err(Invalid::new(
            field,
            "must be a GitHub login: up to 39 letters, digits or single inner hyphens",
        ))
    }
}

/// An absolute `https` URL with a host, as PR links must be.
pub fn https_url(field: &str, value: &str) -> Checked<String> {
    let v = value;
    match url::Url::parse(v) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()) => {
            if v.len() > 2000 {
                return Err(Invalid::new(field, "must be at most 2000 characters"));
            }
            Ok(v.to_string())
        }
        _ => Err(Invalid::new(field, "must be an https URL")),
    }
}

/// A repo's `pr_url_prefix`: `https://` and more, at most 300 characters. Only a prefix of
/// PR links, so it need not be a whole URL (`https://github.com/acme/` is fine).
pub fn pr_url_prefix(field: &str, value: &str) -> Checked<String> {
    no_nul(field, value)?;
    let n = value.chars().count();
    if !value.starts_with("https://") || n <= "https://".len() {
        return Err(Invalid::new(
            field,
            "must start with https:// and name a host",
        ));
    }
    if n > 300 {
        return Err(Invalid::new(field, "must be at most 300 characters"));
    }
    // links are matched against it by host and whole path segments (domain::pr_link); a
    // prefix no URL parser can read matches no link, so it refuses every PR link
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_means_the_same_as_the_documented_pattern() {
        for blank in ["", " ", "\t\n", "\u{85}", "\u{feff}", "\u{3000}\u{a0}"] {
            assert!(is_blank(blank), "{blank:?}");
            assert!(text("f", blank, 1, 10).is_err());
        }
        for not_blank in ["a", " a ", "\u{85}x", "\u{7f}"] {
            assert!(!is_blank(not_blank), "{not_blank:?}");
        }
    }

    fn tags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn skills_are_trimmed_lowercased_and_deduplicated() {
        assert_eq!(
            skills("skills", &tags(&[" Rust", "rust", "SQL ", "go"])).unwrap(),
            ["rust", "sql", "go"]
        );
        assert_eq!(skills("skills", &[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bad_skills_name_the_offending_index() {
        let err = skills("skills", &tags(&["a", "b", "c", &"x".repeat(51)])).unwrap_err();
        assert_eq!(err.details(), "skills[3]: must be at most 50 characters");
        // as sent: padding counts
        assert!(skills("skills", &tags(&[&format!(" {}", "x".repeat(50))])).is_err());
        let err = skills("skills", &tags(&["ok", "  "])).unwrap_err();
        assert_eq!(err.field, "skills[1]");
        let many: Vec<String> = (0..51).map(|i| format!("s{i}")).collect();
        assert!(skills("skills", &many).is_err());
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(text("name", "é", 1, 1).unwrap(), "é");
        assert!(text("name", "", 1, 120).is_err());
        assert!(text("name", &"n".repeat(121), 1, 120).is_err());
        assert_eq!(optional_text("area", Some("  "), 100).unwrap(), None);
        assert!(text("name", "   ", 1, 120).is_err(), "blank is empty");
        assert!(optional_text("note", Some(&format!(" {}", "n".repeat(100))), 100).is_err());
    }

    #[test]
    fn nul_characters_are_refused_with_the_field_named() {
        assert_eq!(text("title", "a\0b", 1, 10).unwrap_err().field, "title");
        assert!(optional_text("note", Some("x\0"), 10).is_err());
        assert_eq!(
            skills("skills", &tags(&["ok", "b\0d"])).unwrap_err().field,
            "skills[1]"
        );
    }

    #[test]
    fn ranges_and_defaults() {
        assert_eq!(int_in("capacity_points", None, 5, 1, 1000).unwrap(), 5);
        assert_eq!(
            int_in("capacity_points", Some(0), 5, 1, 1000)
                .unwrap_err()
                .details(),
            "capacity_points: must be between 1 and 1000"
        );
        assert!(int_in(
            "priority",
            Some(i64::MAX),
            10,
            i32::MIN.into(),
            i32::MAX.into()
        )
        .is_err());
    }

    #[test]
    fn github_handles_follow_github_rules() {
        assert_eq!(
            github_handle("h", Some("octo-cat")).unwrap().as_deref(),
            Some("octo-cat")
        );
        assert_eq!(github_handle("h", None).unwrap(), None);
        for bad in ["-x", "x-", "a--b", "a_b", &"a".repeat(40)] {
            assert!(github_handle("h", Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn pr_urls_must_be_https() {
        assert!(https_url("pr_url", "https://github.com/o/r/pull/1").is_ok());
        assert!(https_url("pr_url", "http://github.com/o/r/pull/1").is_err());
        assert!(https_url("pr_url", "github.com/o/r/pull/1").is_err());
        assert!(https_url("pr_url", "javascript:alert(1)").is_err());
    }

    #[test]
    fn bulk_errors_carry_their_index() {
        let e = Invalid::new("title", "must not be empty").at_index(3);
        assert_eq!(e.details(), "[3].title: must not be empty");
    }
}
