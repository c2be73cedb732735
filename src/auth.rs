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

/// What an admin token may touch: the whole pool, or only the repositories it names
/// (`OWP_ADMIN_TOKEN=name@owner/repo=<token>`, one entry per repository).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminScope {
    Pool,
    Repos(Vec<String>),
}

impl AdminScope {
    /// May this admin act on `repo`?
    pub fn admits(&self, repo: &str) -> bool {
        match self {
            Self::Pool => true,
            Self::Repos(repos) => repos.iter().any(|r| r == repo),
        }
    }

    /// The repositories a scoped token is limited to; `None` for a pool-wide one.
    pub fn repos(&self) -> Option<&[String]> {
        match self {
            Self::Pool => None,
            Self::Repos(repos) => Some(repos),
        }
    }
}

/// A configured admin token that matched: its name (for the audit log) and its scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminIdentity<'a> {
    pub name: Option<&'a str>,
    pub scope: AdminScope,
}

/// Configured secrets (admin tokens, the registration token), kept as digests and compared
/// in constant time; comparing digests also hides the secrets' lengths. Admin tokens may
/// carry a name (`alice=<token>`), which the audit log records as `admin:alice`, and a
/// repository scope (`alice@owner/repo=<token>`).
#[derive(Clone, Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
}

#[derive(Clone)]
struct Entry {
    name: Option<String>,
    repo: Option<String>,
    digest: [u8; 32],
}

impl TokenSet {
    /// Unnamed tokens.
    pub fn new<S: AsRef<str>>(tokens: impl IntoIterator<Item = S>) -> Self {
        Self {
            entries: tokens
                .into_iter()
                .map(|t| t.as_ref().trim().to_string())
                .filter(|t| !t.is_empty())
                .map(|t| Entry {
                    name: None,
                    repo: None,
                    digest: digest(&t),
                })
                .collect(),
        }
    }

    /// `name=token`, `name@repo=token` or `token` entries (OWP_ADMIN_TOKEN), checked by
    /// [`check_admin_entries`] first.
    pub fn named<S: AsRef<str>>(entries: impl IntoIterator<Item = S>) -> Self {
        Self {
            entries: entries
                .into_iter()
                .map(|e| e.as_ref().trim().to_string())
                .filter(|e| !e.is_empty())
                .map(|e| {
                    let entry = split_named(&e);
                    Entry {
                        name: entry.name.map(str::to_string),
                        repo: entry.repo.map(str::to_string),
                        digest: digest(entry.token),
                    }
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

    /// The matching token's name and scope, or `None`.
    pub fn identify(&self, presented: &str) -> Option<AdminIdentity<'_>> {
        self.identify_digest(&digest(presented))
    }

    /// Like `identify`, for a token known by its digest (a dashboard session's). A token
    /// listed for several repositories is scoped to all of them; listed once without a
    /// repository, it is pool-wide.
    pub fn identify_digest(&self, d: &[u8; 32]) -> Option<AdminIdentity<'_>> {
        // check every configured token, so timing does not tell which one matched
        let mut found: Option<AdminIdentity<'_>> = None;
        for e in &self.entries {
            if !bool::from(e.digest.ct_eq(d)) {
                continue;
            }
            let id = found.get_or_insert(AdminIdentity {
                name: e.name.as_deref(),
                scope: AdminScope::Repos(vec![]),
            });
            match (&mut id.scope, &e.repo) {
                (AdminScope::Repos(repos), Some(r)) => repos.push(r.clone()),
                (scope, None) => *scope = AdminScope::Pool,
                (AdminScope::Pool, Some(_)) => {}
            }
        }
        found
    }
}

/// One `OWP_ADMIN_TOKEN` entry taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct AdminEntry<'a> {
    pub name: Option<&'a str>,
    pub repo: Option<&'a str>,
    pub token: &'a str,
}

fn is_token_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn is_scope_repo(r: &str) -> bool {
    (1..=200).contains(&r.chars().count())
        && !r
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
}

/// An `OWP_ADMIN_TOKEN` entry: `alice=<token>`, `alice@owner/repo=<token>` or a bare
/// token. A name is 1-64 letters, digits, `_`, `.` or `-`; anything else before an `=` is
/// part of the token (base64 padding), which [`check_admin_entries`] refuses when it
/// looks like a scope gone wrong.
pub fn split_named(entry: &str) -> AdminEntry<'_> {
    let entry = entry.trim();
    let bare = AdminEntry {
        name: None,
        repo: None,
        token: entry,
    };
    let Some((head, token)) = entry.split_once('=') else {
        return bare;
    };
    let token = token.trim();
    if token.is_empty() {
        return bare;
    }
    match head.split_once('@') {
        None if is_token_name(head) => AdminEntry {
            name: Some(head),
            repo: None,
            token,
        },
        Some((name, repo)) if is_token_name(name) && is_scope_repo(repo) => AdminEntry {
            name: Some(name),
            repo: Some(repo),
            token,
        },
        _ => bare,
    }
}

/// The configuration errors a server must not start with: a token shorter than
/// [`MIN_ADMIN_TOKEN_LEN`], a malformed scope (`@` before the `=` that is not
/// `name@repo`: it would silently become a pool-wide token), and one token given two
/// names or both a pool-wide and a scoped entry.
pub fn check_admin_entries<S: AsRef<str>>(entries: &[S]) -> Result<(), String> {
    let parsed: Vec<AdminEntry<'_>> = entries.iter().map(|e| split_named(e.as_ref())).collect();
    for e in &parsed {
        let label = e
            .name
            .map_or_else(|| "a token".to_string(), |n| format!("the token named {n}"));
        if e.name.is_none()
            && e.token
                .split_once('=')
                .is_some_and(|(h, _)| h.contains('@'))
        {
            return Err(
                "an entry with `@` before its `=` must be name@owner/repo=<token> (a name of letters, digits, `_`, `.` or `-`, and a repository without spaces or commas)"
                    .into(),
            );
        }
        if e.token.chars().count() < MIN_ADMIN_TOKEN_LEN {
            return Err(format!(
                "{label} is shorter than {MIN_ADMIN_TOKEN_LEN} characters; use a long random token (e.g. `openssl rand -base64 32`)"
            ));
        }
    }
    for (i, a) in parsed.iter().enumerate() {
        for b in &parsed[i + 1..] {
            if a.token != b.token {
                continue;
            }
            if a.name != b.name {
                return Err(
                    "one token is listed under two names; give each admin its own token".into(),
                );
            }
            if a.repo.is_some() != b.repo.is_some() {
                return Err(format!(
                    "the token named {} is listed both pool-wide and for a repository; a scoped token needs its own value",
                    a.name.unwrap_or("(unnamed)")
                ));
            }
        }
    }
    Ok(())
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
        let name = |t: &str| s.identify(t).map(|i| i.name);
        assert_eq!(name("tok-a"), Some(Some("alice")));
        assert_eq!(name("tok-b"), Some(None));
        // not a name: the whole entry is the token
        assert_eq!(name("no name!=tok-c"), Some(None));
        assert_eq!(name("bob="), Some(None));
        assert_eq!(name("alice=tok-a"), None);
        assert_eq!(name("tok-c"), None);
        assert_eq!(s.identify("tok-a").unwrap().scope, AdminScope::Pool);
    }

    #[test]
    fn scoped_tokens_admit_only_their_repositories() {
        let s = TokenSet::named([
            "carol@acme/web=tok-c",
            "carol@acme/api=tok-c",
            "dave@solo=tok-d",
            "root=tok-r",
        ]);
        let carol = s.identify("tok-c").unwrap();
        assert_eq!(carol.name, Some("carol"));
        assert!(carol.scope.admits("acme/web") && carol.scope.admits("acme/api"));
        assert!(!carol.scope.admits("acme/webx") && !carol.scope.admits("solo"));
        assert_eq!(
            s.identify("tok-d").unwrap().scope.repos(),
            Some(&["solo".to_string()][..])
        );
        assert!(s.identify("tok-r").unwrap().scope.admits("anything"));
        assert_eq!(s.identify("carol@acme/web=tok-c"), None);
    }

    #[test]
    fn admin_entries_that_would_misread_are_refused() {
        let long = "0123456789abcdef";
        let ok = [
            format!("a@o/r={long}"),
            format!("a@o/s={long}"),
            format!("b={long}x"),
        ];
        assert_eq!(check_admin_entries(&ok), Ok(()));
        // a scope gone wrong would otherwise be a pool-wide token named by the whole entry
        for bad in [
            format!("a@={long}"),
            format!("a b@o/r={long}"),
            format!("a@o r={long}"),
        ] {
            assert!(
                check_admin_entries(std::slice::from_ref(&bad)).is_err(),
                "{bad}"
            );
        }
        assert!(check_admin_entries(&["a@o/r=short"]).is_err());
        assert!(check_admin_entries(&[format!("a={long}"), format!("a@o/r={long}")]).is_err());
        assert!(check_admin_entries(&[format!("a@o/r={long}"), format!("b@o/s={long}")]).is_err());
        // base64 padding is part of a bare token
        assert_eq!(split_named("abc/def+ghi=").token, "abc/def+ghi=");
    }

    #[test]
    fn token_sets_accept_any_configured_token_and_nothing_else() {
        let s = TokenSet::new(["old", " new "]);
        assert!(s.verify("old") && s.verify("new"));
        assert!(!s.verify("") && !s.verify("ol") && !s.verify("new "));
        assert!(TokenSet::new([""]).is_empty());
    }
}
