//! A new task's fields checked by the protocol's rules. The server and the CLI's import
//! both check here, so a file is refused before anything is sent.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::ids::TaskId;
use super::input::{self, Checked, Invalid};

/// A task ready to insert: every field checked, defaults filled in.
#[derive(Debug, Serialize)]
pub struct NewTask {
    pub id: TaskId,
    pub repo: String,
    pub title: String,
    pub description: String,
    pub required_skills: Vec<String>,
    pub estimate_points: i32,
    pub priority: i32,
    pub area: Option<String>,
    pub tier: i32,
    pub min_reputation: i32,
    pub max_attempts: i32,
    pub external_id: Option<String>,
    pub not_before: Option<DateTime<Utc>>,
    pub depends_on: Vec<String>,
    pub reserved_for: Option<String>,
    pub reserved_until: Option<DateTime<Utc>>,
}

/// A task as asked for (`wire::admin::TaskRequest::fields`), unchecked.
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskFields<'a> {
    pub repo: &'a str,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub required_skills: &'a [String],
    pub estimate_points: Option<i64>,
    pub priority: Option<i64>,
    pub area: Option<&'a str>,
    pub tier: Option<i64>,
    pub min_reputation: Option<i64>,
    pub max_attempts: Option<i64>,
    pub external_id: Option<&'a str>,
    pub not_before: Option<&'a str>,
    pub depends_on: &'a [String],
    pub reserved_for: Option<&'a str>,
    pub reserved_until: Option<&'a str>,
}

impl NewTask {
    /// Checks one task's fields; the first failure names its field.
    pub fn check(f: TaskFields<'_>) -> Checked<NewTask> {
        Ok(NewTask {
            id: TaskId::generate(),
            repo: input::text("repo", f.repo, 1, 200)?,
            title: input::text("title", f.title, 1, 300)?,
            description: input::optional_text("description", f.description, 20_000)?
                .unwrap_or_default(),
            required_skills: input::skills("required_skills", f.required_skills)?,
            estimate_points: input::int_in("estimate_points", f.estimate_points, 1, 1, 100)?,
            priority: input::int_in("priority", f.priority, 10, i32::MIN.into(), i32::MAX.into())?,
            area: input::optional_text("area", f.area, 100)?,
            tier: input::int_in("tier", f.tier, 0, 0, 3)?,
            min_reputation: input::int_in("min_reputation", f.min_reputation, 0, 0, 100)?,
            max_attempts: input::int_in("max_attempts", f.max_attempts, 3, 1, 100)?,
            external_id: match f.external_id {
                None => None,
                Some(key) => Some(input::text("external_id", key, 1, 200)?),
            },
            not_before: f
                .not_before
                .map(|t| input::timestamp("not_before", t))
                .transpose()?,
            depends_on: input::text_list("depends_on", f.depends_on, 50, 100)?,
            reserved_for: input::optional_text("reserved_for", f.reserved_for, 100)?,
            reserved_until: f
                .reserved_until
                .map(|t| input::timestamp("reserved_until", t))
                .transpose()?,
        })
        .and_then(whole_reservation)
    }
}

/// A reservation names its worker and its end, or neither.
fn whole_reservation(t: NewTask) -> Checked<NewTask> {
    match (&t.reserved_for, &t.reserved_until) {
        (Some(_), None) => Err(Invalid::new("reserved_until", "required with reserved_for")),
        (None, Some(_)) => Err(Invalid::new("reserved_for", "required with reserved_until")),
        _ => Ok(t),
    }
}

/// Checks a batch as a whole: every task by the field rules, and no `external_id` twice
/// for one repo (the first failure, named by its index).
pub fn check_batch<'a>(batch: impl IntoIterator<Item = TaskFields<'a>>) -> Checked<Vec<NewTask>> {
    let tasks = batch
        .into_iter()
        .enumerate()
        .map(|(i, f)| NewTask::check(f).map_err(|e| e.at_index(i)))
        .collect::<Checked<Vec<_>>>()?;
    let mut seen = std::collections::HashMap::new();
    for (i, t) in tasks.iter().enumerate() {
        if let Some(key) = &t.external_id {
            if let Some(first) = seen.insert((t.repo.as_str(), key.as_str()), i) {
                return Err(Invalid::new(
                    format!("[{i}].external_id"),
                    format!("the same repo and external_id as [{first}]"),
                ));
            }
        }
    }
    Ok(tasks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task<'a>(repo: &'a str, key: Option<&'a str>) -> TaskFields<'a> {
        TaskFields {
            repo,
            title: "t",
            external_id: key,
            ..TaskFields::default()
        }
    }

    #[test]
    fn defaults_fill_in_and_bad_fields_are_named() {
        let t = NewTask::check(task("acme/r", None)).unwrap();
        assert_eq!(
            (t.estimate_points, t.priority, t.tier, t.max_attempts),
            (1, 10, 0, 3)
        );
        let bad = TaskFields {
            tier: Some(4),
            ..task("acme/r", None)
        };
        assert_eq!(NewTask::check(bad).unwrap_err().field, "tier");
    }

    #[test]
    fn a_batch_names_the_first_failure_and_refuses_a_key_twice_per_repo() {
        let ok = check_batch([task("a", Some("k")), task("b", Some("k"))]).unwrap();
        assert_eq!(ok.len(), 2, "one key in two repos is two tasks");
        let twice = check_batch([task("a", Some("k")), task("a", Some("k"))]).unwrap_err();
        assert_eq!(twice.field, "[1].external_id");
        let untitled = TaskFields {
            title: " ",
            ..task("a", None)
        };
        assert_eq!(
            check_batch([task("a", None), untitled]).unwrap_err().field,
            "[1].title"
        );
    }
}
