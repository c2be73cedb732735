//! `owp admin import FILE.yaml`: tasks from a YAML file.
//!
//! ```yaml
//! repo: acme/widgets          # every task's repo (a task may name its own `repo`)
//! tasks:
//!   - title: Fix the parser   # required; the rest is optional
//!     description: It breaks on empty input.
//!     required_skills: [rust]
//!     estimate_points: 2
//!     priority: 10
//!     area: parser
//!     tier: 0
//!     id: PARSE-1             # the task's key: importing the file again skips it
//! ```
//!
//! v0.1's file is read too: a bare list of tasks, their repo from `--repo`, with v0.1's
//! names (`skills` for `required_skills`, `size: S|M|L…` or a number for `estimate_points`,
//! `priority: low|medium|high|critical` or a number; `domain::compat`).
//!
//! The whole file is checked first (YAML, every field by the protocol's rules, every repo
//! known), and nothing is sent when any of it is wrong. Then tasks go in batches of up to
//! 5,000, each created in one transaction; a file of that size or less is all or nothing.
//! Every task carries a key (`yaml:<id>`, or without an `id` a digest of its title and
//! description), so running an import again creates only the tasks that are not there:
//! an import cut short is finished by running it again.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::output;
use crate::client::Client;
use crate::domain::new_task::check_batch;
use crate::wire::admin::{TaskRequest, MAX_BULK};

#[derive(Args)]
pub struct ImportArgs {
    pub file: PathBuf,
    /// The repo of every task that names none (a v0.1 file is a bare list of tasks); a
    /// file whose `repo:` says another is refused.
    #[arg(long)]
    pub repo: Option<String>,
    /// Check the file and the repos, send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportFile {
    repo: Option<String>,
    #[serde(default)]
    tasks: Vec<FileTask>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTask {
    title: String,
    description: Option<String>,
    #[serde(default, alias = "skills")]
    required_skills: Vec<String>,
    estimate_points: Option<i64>,
    /// v0.1: a t-shirt size or a number of points
    size: Option<Scalar>,
    /// a number, or a v0.1 name (`high`)
    priority: Option<Scalar>,
    area: Option<String>,
    tier: Option<i64>,
    min_reputation: Option<i64>,
    max_attempts: Option<i64>,
    /// The task's key within the file's repo.
    id: Option<String>,
    repo: Option<String>,
}

/// A YAML scalar that may be a number or a word (`size: 3`, `size: M`).
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Number(i64),
    Word(String),
}

impl FileTask {
    /// `estimate_points`, or v0.1's `size` (not both).
    fn points(&self) -> Result<Option<i64>, String> {
        match (&self.size, self.estimate_points) {
            (None, points) => Ok(points),
            (Some(_), Some(_)) => Err("give estimate_points or size, not both".into()),
            (Some(Scalar::Number(n)), None) => Ok(Some(*n)),
            (Some(Scalar::Word(w)), None) => crate::domain::compat::size_points(w)
                .map(Some)
                .ok_or_else(|| format!("size: {w:?} is not XS, S, M, L, XL or 1-100 points")),
        }
    }

    /// `priority` as a number (v0.1 names it).
    fn priority(&self) -> Result<Option<i64>, String> {
        match &self.priority {
            None => Ok(None),
            Some(Scalar::Number(n)) => Ok(Some(*n)),
            Some(Scalar::Word(w)) => crate::domain::compat::priority_value(w)
                .map(Some)
                .ok_or_else(|| {
                    format!("priority: {w:?} is not a number or low, medium, high, critical")
                }),
        }
    }
}

/// The file's shape: this service's mapping (`repo:`, `tasks:`) or v0.1's bare list.
fn parse(text: &str, path: &std::path::Path) -> anyhow::Result<ImportFile> {
    let invalid = |e: serde_saphyr::Error| {
        anyhow::anyhow!("{} is not a valid task file: {e}", path.display())
    };
    // a bare list starts with a sequence item; anything else is read as the mapping, so its
    // errors name the mapping's fields
    let list = text
        .lines()
        .map(str::trim_start)
        .find(|l| !l.is_empty() && !l.starts_with('#') && *l != "---")
        .is_some_and(|l| l.starts_with("- ") || l == "-" || l.starts_with('['));
    if list {
        let tasks: Vec<FileTask> = serde_saphyr::from_str(text).map_err(invalid)?;
        return Ok(ImportFile { repo: None, tasks });
    }
    serde_saphyr::from_str(text).map_err(invalid)
}

/// Most bytes of JSON in one request (the server's bulk limit is 8 MiB by default).
const MAX_BATCH_BYTES: usize = 6 << 20;

/// Reads and checks a file: the requests to send, or why nothing may be sent. `repo` is
/// `--repo`.
pub fn load(path: &std::path::Path, repo: Option<&str>) -> anyhow::Result<Vec<TaskRequest>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut file = parse(&text, path)?;
    match (&file.repo, repo) {
        (Some(a), Some(b)) if a != b => {
            anyhow::bail!(
                "the file's repo is {a}, --repo says {b}: give one (nothing was imported)"
            )
        }
        (None, Some(b)) => file.repo = Some(b.to_string()),
        _ => {}
    }
    let mut requests = Vec::with_capacity(file.tasks.len());
    let mut keys = std::collections::HashMap::new();
    for (i, t) in file.tasks.into_iter().enumerate() {
        let estimate_points = t.points().map_err(|e| anyhow::anyhow!("tasks[{i}].{e}"))?;
        let priority = t
            .priority()
            .map_err(|e| anyhow::anyhow!("tasks[{i}].{e}"))?;
        let Some(repo) = t.repo.or_else(|| file.repo.clone()) else {
            anyhow::bail!(
                "tasks[{i}]: no repo (give `--repo`, `repo:` at the top of the file or on the task)"
            );
        };
        let key = match &t.id {
            Some(id) => format!("yaml:{id}"),
            None => {
                let digest = Sha256::new()
                    .chain_update(t.title.as_bytes())
                    .chain_update([0])
                    .chain_update(t.description.as_deref().unwrap_or("").as_bytes())
                    .finalize();
                format!("yaml:{}", &hex::encode(digest)[..20])
            }
        };
        if let Some(first) = keys.insert((repo.clone(), key.clone()), i) {
            let why = match t.id {
                Some(_) => "the same id",
                None => "the same title and description (give one of them an `id`)",
            };
            anyhow::bail!("tasks[{i}]: {why} as tasks[{first}]");
        }
        requests.push(TaskRequest {
            repo,
            title: t.title,
            description: t.description,
            required_skills: Some(t.required_skills),
            estimate_points,
            priority,
            area: t.area,
            tier: t.tier,
            min_reputation: t.min_reputation,
            max_attempts: t.max_attempts,
            external_id: Some(key),
            ..TaskRequest::default()
        });
    }
    // the server's own rules, so a file is refused here as a whole, before anything is sent
    if let Err(e) = check_batch(requests.iter().map(TaskRequest::fields)) {
        anyhow::bail!("tasks{}: {}", e.field, e.message);
    }
    Ok(requests)
}

pub async fn run(client: &Client, args: ImportArgs, json: bool) -> anyhow::Result<()> {
    let requests = load(&args.file, args.repo.as_deref())?;
    let known = client.list_repos().await?;
    let mut repos: Vec<&str> = requests.iter().map(|r| r.repo.as_str()).collect();
    repos.sort_unstable();
    repos.dedup();
    for r in &repos {
        if !known.repositories.iter().any(|k| k.repo == *r) {
            anyhow::bail!("repo {r} is not in the pool: `owp admin repo add {r}` first (nothing was imported)");
        }
    }
    if args.dry_run {
        return done(json, requests.len(), 0, &[], true);
    }
    let created = send(client, &requests).await?;
    done(json, requests.len(), created.0, &created.1, false)
}

/// Sends `requests` in batches with a progress bar; (tasks created, every task id).
pub async fn send(
    client: &Client,
    requests: &[TaskRequest],
) -> anyhow::Result<(usize, Vec<String>)> {
    let bar = ProgressBar::new(requests.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} tasks {msg}")
            .expect("a valid progress template"),
    );
    let mut created = 0;
    let mut ids = Vec::with_capacity(requests.len());
    for batch in batches(requests)? {
        let answer = client.create_tasks(batch).await.map_err(|e| {
            bar.abandon();
            anyhow::anyhow!(
                "{e}\n{} of {} tasks were imported before this; run the import again to add the rest (tasks already there are skipped)",
                ids.len(),
                requests.len()
            )
        })?;
        created += answer.created;
        ids.extend(answer.task_ids);
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok((created, ids))
}

/// Up to 5,000 tasks and 6 MiB of JSON each.
fn batches(requests: &[TaskRequest]) -> anyhow::Result<Vec<&[TaskRequest]>> {
    let mut out = vec![];
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in requests.iter().enumerate() {
        let size = serde_json::to_vec(r)?.len() + 1;
        if i > start && (i - start == MAX_BULK || bytes + size > MAX_BATCH_BYTES) {
            out.push(&requests[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < requests.len() {
        out.push(&requests[start..]);
    }
    Ok(out)
}

fn done(
    json: bool,
    total: usize,
    created: usize,
    ids: &[String],
    dry_run: bool,
) -> anyhow::Result<()> {
    if json {
        return output::json(&serde_json::json!({
            "tasks": total, "created": created, "existing": total - created.min(total),
            "task_ids": ids, "dry_run": dry_run,
        }));
    }
    if dry_run {
        println!("{total} tasks are valid; nothing was sent (--dry-run)");
    } else {
        println!(
            "imported {total} tasks: {created} created, {} already there",
            total - created.min(total)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> anyhow::Result<Vec<TaskRequest>> {
        let path =
            std::env::temp_dir().join(format!("owp-import-{}.yaml", uuid::Uuid::now_v7().simple()));
        std::fs::write(&path, text).unwrap();
        let out = load(&path, None);
        std::fs::remove_file(path).unwrap();
        out
    }

    #[test]
    fn a_file_becomes_keyed_requests() {
        let r = file("repo: acme/w\ntasks:\n  - title: A\n    required_skills: [Rust]\n    id: A-1\n  - title: B\n    repo: acme/x\n").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].external_id.as_deref(), Some("yaml:A-1"));
        assert_eq!(r[1].repo, "acme/x");
        assert!(r[1].external_id.as_deref().unwrap().starts_with("yaml:"));
    }

    fn list(text: &str, repo: Option<&str>) -> anyhow::Result<Vec<TaskRequest>> {
        let path =
            std::env::temp_dir().join(format!("owp-import-{}.yaml", uuid::Uuid::now_v7().simple()));
        std::fs::write(&path, text).unwrap();
        let out = load(&path, repo);
        std::fs::remove_file(path).unwrap();
        out
    }

    #[test]
    fn a_v01_bare_list_takes_its_repo_from_the_flag_and_v01_names() {
        let text = "# v0.1\n- title: A\n  skills: [rust, sql]\n  size: M\n  priority: high\n- title: B\n  size: 8\n  priority: 3\n";
        let r = list(text, Some("acme/w")).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].repo, "acme/w");
        assert_eq!(
            r[0].required_skills.as_deref(),
            Some(&["rust".to_string(), "sql".to_string()][..])
        );
        assert_eq!((r[0].estimate_points, r[0].priority), (Some(3), Some(50)));
        assert_eq!((r[1].estimate_points, r[1].priority), (Some(8), Some(3)));
        let e = list(text, None).unwrap_err();
        assert!(
            e.to_string().contains("tasks[0]: no repo (give `--repo`"),
            "{e}"
        );
        let e = list("- title: A\n  size: XXL\n", Some("acme/w")).unwrap_err();
        assert!(e.to_string().contains("tasks[0].size"), "{e}");
        let e = list("- title: A\n  priority: soonish\n", Some("acme/w")).unwrap_err();
        assert!(e.to_string().contains("tasks[0].priority"), "{e}");
        let e = list(
            "- title: A\n  size: S\n  estimate_points: 2\n",
            Some("acme/w"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("not both"), "{e}");
        let e = list("repo: acme/w\ntasks:\n  - title: A\n", Some("acme/x")).unwrap_err();
        assert!(e.to_string().contains("--repo says acme/x"), "{e}");
        assert_eq!(
            list("repo: acme/w\ntasks:\n  - title: A\n", Some("acme/w")).unwrap()[0].repo,
            "acme/w"
        );
    }

    #[test]
    fn a_bad_task_refuses_the_whole_file_naming_it() {
        let e =
            file("repo: acme/w\ntasks:\n  - title: ok\n  - title: bad\n    estimate_points: 500\n")
                .unwrap_err();
        assert!(e.to_string().contains("tasks[1].estimate_points"), "{e}");
        let e = file("repo: acme/w\ntasks:\n  - title: A\n  - title: A\n").unwrap_err();
        assert!(e.to_string().contains("tasks[1]: the same title"), "{e}");
        let e = file("repo: acme/w\ntasks:\n  - titel: typo\n").unwrap_err();
        assert!(e.to_string().contains("not a valid task file"), "{e}");
    }

    #[test]
    fn batches_respect_count_and_size() {
        let small: Vec<TaskRequest> = (0..12_001)
            .map(|i| TaskRequest {
                repo: "r".into(),
                title: format!("t{i}"),
                ..TaskRequest::default()
            })
            .collect();
        let b = batches(&small).unwrap();
        assert_eq!(
            b.iter().map(|b| b.len()).collect::<Vec<_>>(),
            vec![5_000, 5_000, 2_001]
        );
        let big: Vec<TaskRequest> = (0..700)
            .map(|i| TaskRequest {
                repo: "r".into(),
                title: format!("t{i}"),
                description: Some("d".repeat(20_000)),
                ..TaskRequest::default()
            })
            .collect();
        let b = batches(&big).unwrap();
        assert!(b.len() >= 3 && b.iter().map(|b| b.len()).sum::<usize>() == 700);
    }
}
