//! Which edits a task may take in its current status: a change that would invalidate the
//! live lease or an open offer (the holder might lack the new skills, tier or capacity) or move an area lock
//! that an open task holds is refused; the rest may change at any time.

use super::status::TaskStatus;

/// The fields an edit changes (only those whose value differs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub required_skills: bool,
    pub estimate_points: bool,
    pub tier: bool,
    pub area: bool,
}

/// The first field the task's status forbids changing, if any.
pub fn forbidden_change(status: TaskStatus, c: Changes) -> Option<&'static str> {
    if status.holds_capacity() {
        if c.required_skills {
            return Some("required_skills");
        }
        if c.estimate_points {
            return Some("estimate_points");
        }
        if c.tier {
            return Some("tier");
        }
    }
    // an open task (live or pr_opened) holds its area's lock
    if status.is_open() && c.area {
        return Some("area");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn a_live_lease_keeps_what_it_was_granted_on() {
        let skills = Changes {
            required_skills: true,
            ..Changes::default()
        };
        let area = Changes {
            area: true,
            ..Changes::default()
        };
        for live in [Leased, InProgress, Blocked] {
            assert_eq!(forbidden_change(live, skills), Some("required_skills"));
            assert_eq!(forbidden_change(live, area), Some("area"));
        }
        assert_eq!(forbidden_change(PrOpened, skills), None);
        assert_eq!(forbidden_change(PrOpened, area), Some("area"));
        for free in [Ready, Completed, Merged, Failed, Cancelled] {
            assert_eq!(forbidden_change(free, skills), None);
            assert_eq!(forbidden_change(free, area), None);
        }
        assert_eq!(forbidden_change(Leased, Changes::default()), None);
    }
}
