//! Tokens: generated from the OS CSPRNG, stored and compared only as SHA-256 digests.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A new bearer token: 256 random bits, URL-safe base64 (43 chars).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    // ThreadRng is a CSPRNG seeded and periodically reseeded from the OS
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Configured secrets (admin tokens, the registration token), kept as digests and compared
/// in constant time; comparing digests also hides the secrets' lengths. Admin tokens may
/// carry a name (`alice=<token>`), which the audit log records as `admin:alice`.
#[derive(Clone, Default)]
pub struct TokenSet {
    entries: Vec<(Option<String>, [u8; 32])>,
}

impl TokenSet {
    /// Unnamed tokens.
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self {
            entries: tokens
                .into_iter()
                .map(|t| t.as_ref().trim().to_string())
                .filter(|t| !t.is_empty())
                .map(|t| (None, digest(&t)))
                .collect(),
        }
    }

    /// `name=token` or `token` entries (OWP_ADMIN_TOKEN). A name is 1-64 letters, digits,
    /// `_`, `.` or `-`; anything else before an `=` is part of the token.
    pub fn named<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|e| e.as_ref().trim().to_string())
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let (name, token) = split_named(&e);
                    (name.map(str::to_string), digest(token))
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn verify(&self, presented: &str) -> bool {
        self.identify(presented).is_some()
    }

    /// The matching entry's name (`Some(None)` for an unnamed token), or `None`.
    pub fn identify(&self, presented: &str) -> Option<Option<&str>> {
        self.identify_digest(&digest(presented))
    }

    /// Like `identify`, for a token known by its digest (a dashboard session's).
    pub fn identify_digest(&self, d: &[u8; 32]) -> Option<Option<&str>> {
        // check every configured token, so timing does not tell which one matched
        let mut found = None;
        for (name, known) in &self.entries {
            if bool::from(known.ct_eq(d)) {
                found = Some(name.as_deref());
            }
        }
        found
    }
}

/// An `OWP_ADMIN_TOKEN` entry as (name, token): `alice=<token>` or a bare token.
pub fn split_named(entry: &str) -> (Option<&str>, &str) {
    let is_name = |n: &str| {
        (1..=64).contains(&n.len())
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    let entry = entry.trim();
    match entry.split_once('=') {
        Some((name, token)) if is_name(name) && !token.trim().is_empty() => {
            (Some(name), token.trim())
        }
        _ => (None, entry),
    }
}

/// The shortest admin token the server starts with: a guessable one is an open door to
/// every admin route (limits slow guessing, they do not stop it).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Who may register a worker. The default is closed: a pool open to anyone on the
/// network must be opened on purpose.
#[derive(Clone)]
pub enum Registration {
    /// `OWP_OPEN_REGISTRATION=true` or `--dev`: anyone may register.
    Open,
    /// `OWP_REGISTRATION_TOKEN`: registration needs one of these in X-Registration-Token.
    Token(TokenSet),
    /// Neither: every registration is refused (403).
    Closed,
}

impl Registration {
    /// The mode the settings ask for; a token wins over `open`.
    pub fn from_settings(token: Option<&str>, open: bool) -> Self {
        match token.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => Self::Token(TokenSet::new([t])),
            None if open => Self::Open,
            None => Self::Closed,
        }
    }

    /// For the startup log.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Open => "open: anyone who can reach the server may register a worker",
            Self::Token(_) => "by token: registration needs X-Registration-Token",
            Self::Closed => {
                "closed: set OWP_REGISTRATION_TOKEN or OWP_OPEN_REGISTRATION=true to admit workers"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn registration_is_closed_unless_opened_or_gated() {
        assert!(matches!(
            Registration::from_settings(None, false),
            Registration::Closed
        ));
        assert!(matches!(
            Registration::from_settings(Some(" "), false),
            Registration::Closed
        ));
        assert!(matches!(
            Registration::from_settings(None, true),
            Registration::Open
        ));
        assert!(matches!(
            Registration::from_settings(Some("t"), true),
            Registration::Token(_)
        ));
    }

    #[test]
    fn admin_tokens_may_carry_a_name() {
        let s = TokenSet::named(["alice=tok-a", "tok-b", "no name!=tok-c", "bob="]);
        assert_eq!(s.identify("tok-a"), Some(Some("alice")));
        assert_eq!(s.identify("tok-b"), Some(None));
        // not a name: the whole entry is the token
        assert_eq!(s.identify("no name!=tok-c"), Some(None));
        assert_eq!(s.identify("bob="), Some(None));
        assert_eq!(s.identify("alice=tok-a"), None);
        assert_eq!(s.identify("tok-c"), None);
    }

    #[test]
    fn token_sets_accept_any_configured_token_and_nothing_else() {
        let s = TokenSet::new(["old", " new "]);
        assert!(s.verify("old") && s.verify("new"));
        assert!(!s.verify("") && !s.verify("ol") && !s.verify("new "));
        assert!(TokenSet::new([""]).is_empty());
    }
}
