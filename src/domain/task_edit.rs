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

/// The task whose dependencies would lead back to `task` if it waited on `deps`: a cycle
/// would keep every task on it out of the queue for good. `waits_on` holds, for each task
/// reachable from `deps`, the tasks it waits on.
pub fn cycle_through<'a>(
    task: &str,
    deps: &'a [String],
    waits_on: &'a std::collections::HashMap<String, Vec<String>>,
) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    // (the dependency named in the edit, the task reached through it)
    let mut stack: Vec<(&str, &str)> = deps.iter().map(|d| (d.as_str(), d.as_str())).collect();
    while let Some((via, id)) = stack.pop() {
        if id == task {
            return Some(via);
        }
        if !seen.insert(id) {
            continue;
        }
        for next in waits_on.get(id).into_iter().flatten() {
            stack.push((via, next.as_str()));
        }
    }
    None
}

#[cfg(test)]
mod cycle_tests {
    use super::cycle_through;
    use std::collections::HashMap;

    fn graph(edges: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(t, d)| (t.to_string(), d.iter().map(|x| x.to_string()).collect()))
            .collect()
    }

    #[test]
    fn a_dependency_that_leads_back_is_a_cycle() {
        let g = graph(&[("b", &["c"]), ("c", &["a"]), ("d", &[])]);
        let deps = |d: &[&str]| d.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(cycle_through("a", &deps(&["d", "b"]), &g), Some("b"));
        assert_eq!(cycle_through("a", &deps(&["a"]), &g), Some("a"), "itself");
        assert_eq!(cycle_through("a", &deps(&["d"]), &g), None);
        assert_eq!(cycle_through("x", &deps(&["b"]), &g), None);
        // a diamond is no cycle, and a cycle elsewhere does not loop forever
        let g = graph(&[("b", &["d"]), ("c", &["d"]), ("d", &["e"]), ("e", &["d"])]);
        assert_eq!(cycle_through("a", &deps(&["b", "c"]), &g), None);
    }
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
