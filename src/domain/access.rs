//! Who may take work in a repository: the repository's allow and deny lists of workers and
//! its lowest trust tier admitted, and the worker's own choice of repositories. Checked for
//! every new lease or offer under the repository's lock (store::claim); leases and offers
//! granted before a change stand (an operator requeues them if they must go).

/// A repository's access rules.
#[derive(Clone, Copy, Debug, Default)]
pub struct RepoAccess<'a> {
    /// `None`: every worker; otherwise only these worker ids.
    pub allow: Option<&'a [String]>,
    /// Never these worker ids, whatever the allow list says.
    pub deny: &'a [String],
    /// The lowest trust tier admitted (0-3).
    pub min_tier: i16,
}

/// Why a repository does not admit a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotAllowed,
    TierBelow {
        needs: i16,
    },
    /// The worker takes work only from other repositories.
    NotChosen,
}

/// Whether the repository admits the worker (`tier` its trust level) and the worker takes
/// work there (`chosen`: its `repos`, `None` for any).
pub fn admits(
    repo: &str,
    access: &RepoAccess<'_>,
    worker_id: &str,
    tier: i16,
    chosen: Option<&[String]>,
) -> Result<(), Refusal> {
    if access.deny.iter().any(|w| w == worker_id) {
        return Err(Refusal::Denied);
    }
    if access
        .allow
        .is_some_and(|allow| !allow.iter().any(|w| w == worker_id))
    {
        return Err(Refusal::NotAllowed);
    }
    if tier < access.min_tier {
        return Err(Refusal::TierBelow {
            needs: access.min_tier,
        });
    }
    if chosen.is_some_and(|repos| !repos.iter().any(|r| r == repo)) {
        return Err(Refusal::NotChosen);
    }
    Ok(())
}

/// Whether a claim waits for a maintainer's approval before work starts: the repository
/// asks for it (`claim_approval`) and the worker is untrusted.
pub fn needs_approval(claim_approval: bool, tier: i16) -> bool {
    claim_approval && tier <= crate::domain::trust::TrustTier::Untrusted.level()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_untrusted_workers_wait_for_approval_where_the_repo_asks() {
        assert!(needs_approval(true, 0));
        assert!(!needs_approval(true, 1) && !needs_approval(true, 3));
        assert!(!needs_approval(false, 0));
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn deny_wins_then_allow_then_tier_then_the_workers_choice() {
        let (allow, deny) = (ids(&["w_a", "w_b"]), ids(&["w_b"]));
        let a = RepoAccess {
            allow: Some(&allow),
            deny: &deny,
            min_tier: 1,
        };
        assert_eq!(admits("r", &a, "w_b", 3, None), Err(Refusal::Denied));
        assert_eq!(admits("r", &a, "w_c", 3, None), Err(Refusal::NotAllowed));
        assert_eq!(
            admits("r", &a, "w_a", 0, None),
            Err(Refusal::TierBelow { needs: 1 })
        );
        assert_eq!(admits("r", &a, "w_a", 1, None), Ok(()));
        let mine = ids(&["other"]);
        assert_eq!(
            admits("r", &a, "w_a", 1, Some(&mine)),
            Err(Refusal::NotChosen)
        );
        let mine = ids(&["other", "r"]);
        assert_eq!(admits("r", &a, "w_a", 1, Some(&mine)), Ok(()));
    }

    #[test]
    fn no_rules_admit_everyone() {
        assert_eq!(admits("r", &RepoAccess::default(), "w_x", 0, None), Ok(()));
    }
}
