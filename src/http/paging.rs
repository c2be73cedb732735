//! Keyset paging for the list endpoints: opaque cursors and page sizes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::domain::input;
use crate::domain::input::Invalid;
use crate::error::ApiError;

/// An opaque cursor: the last key of a page, encoded so clients do not build their own.
pub fn encode_cursor(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("k:{key}"))
}

pub(super) fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(c) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    URL_SAFE_NO_PAD
        .decode(c)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("k:").map(str::to_string))
        .filter(|k| !k.contains('\0'))
        .map(Some)
        .ok_or_else(|| Invalid::new("cursor", "not a cursor this API returned").into())
}

pub(super) fn page_limit(limit: Option<i64>) -> Result<i64, ApiError> {
    Ok(i64::from(input::int_in("limit", limit, 50, 1, 200)?))
}

/// The next cursor when the page is full (a full page may be the last: the next one is
/// then empty, with a null cursor).
pub(super) fn next_cursor<T>(page: &[T], limit: i64, key: impl Fn(&T) -> String) -> Option<String> {
    (page.len() as i64 == limit)
        .then(|| page.last().map(|t| encode_cursor(&key(t))))
        .flatten()
}
