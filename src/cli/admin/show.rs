//! The admin tool's tables and the live state view.

use super::output::{opt, time, Table};
use crate::client::Client;
use crate::wire::overview::StateResponse;
use crate::wire::views::{AuditList, RepoList, TaskDetail, TaskView, WorkerDetail, WorkerView};

pub fn repos(list: &RepoList) {
    let mut t = Table::new(&[
        "repo",
        "budget",
        "open",
        "share",
        "ready",
        "area locks",
        "held areas",
        "stale",
        "pr prefix",
    ]);
    for r in &list.repositories {
        t.row(vec![
            r.repo.clone(),
            r.max_open_prs.to_string(),
            r.open_slots.to_string(),
            r.fair_share.to_string(),
            r.ready.to_string(),
            r.area_locks_enabled.to_string(),
            if r.held_areas.is_empty() {
                "-".into()
            } else {
                r.held_areas.join(",")
            },
            r.stale_prs.to_string(),
            opt(&r.pr_url_prefix),
        ]);
    }
    t.print();
}

pub fn tasks(tasks: &[TaskView]) {
    let mut t = Table::new(&[
        "task", "status", "repo", "pri", "pts", "area", "worker", "title",
    ]);
    for task in tasks {
        t.row(vec![
            task.task_id.clone(),
            task.status.as_str().into(),
            task.repo.clone(),
            task.priority.to_string(),
            task.estimate_points.to_string(),
            opt(&task.area),
            opt(&task.worker_id),
            task.title.clone(),
        ]);
    }
    t.print();
}

pub fn task(d: &TaskDetail) {
    let t = &d.task;
    let fields = [
        ("task", t.task_id.clone()),
        ("title", t.title.clone()),
        ("repo", t.repo.clone()),
        ("status", t.status.as_str().into()),
        ("priority", t.priority.to_string()),
        ("points", t.estimate_points.to_string()),
        ("skills", t.required_skills.join(",")),
        ("area", opt(&t.area)),
        ("tier", t.tier.to_string()),
        ("attempts", format!("{} of {}", t.attempt, t.max_attempts)),
        ("worker", opt(&t.worker_id)),
        ("lease", opt(&t.lease_id)),
        ("pr", opt(&t.pr_url)),
        ("external id", opt(&t.external_id)),
        ("created", time(&t.created_at)),
    ];
    for (k, v) in fields {
        println!("{k:<12} {v}");
    }
    if !d.description.is_empty() {
        println!("\n{}", d.description);
    }
    println!("\nleases:");
    let mut l = Table::new(&[
        "lease",
        "worker",
        "attempt",
        "granted",
        "ended",
        "end reason",
    ]);
    for lease in &d.leases {
        l.row(vec![
            lease.lease_id.clone(),
            lease.worker_id.clone(),
            lease.attempt.to_string(),
            time(&lease.granted_at),
            lease.ended_at.as_ref().map_or("-".into(), time),
            opt(&lease.end_reason),
        ]);
    }
    l.print();
    println!("\nhistory:");
    let mut h = Table::new(&["time", "event", "actor", "details"]);
    for e in &d.events {
        h.row(vec![
            time(&e.timestamp),
            e.event_type.clone(),
            opt(&e.actor),
            e.details.to_string(),
        ]);
    }
    h.print();
}

pub fn workers(workers: &[WorkerView]) {
    let mut t = Table::new(&[
        "worker", "name", "online", "status", "tier", "points", "leases", "skills", "flags",
    ]);
    for w in workers {
        t.row(vec![
            w.worker_id.clone(),
            w.name.clone(),
            if w.online { "yes" } else { "no" }.into(),
            w.status.as_str().into(),
            w.trust_tier.as_str().into(),
            format!("{}/{}", w.used_points, w.capacity_points),
            format!("{}/{}", w.live_leases, w.max_concurrent_tasks),
            w.skills.join(","),
            flags(w),
        ]);
    }
    t.print();
}

fn flags(w: &WorkerView) -> String {
    match (w.revoked, w.paused) {
        (true, _) => "revoked".into(),
        (false, true) => "paused".into(),
        _ => "-".into(),
    }
}

pub fn worker(d: &WorkerDetail) {
    let w = &d.worker;
    let fields = [
        ("worker", w.worker_id.clone()),
        ("name", w.name.clone()),
        ("github", opt(&w.github_handle)),
        ("skills", w.skills.join(",")),
        (
            "capacity",
            format!(
                "{} of {} points, {} of {} leases",
                w.used_points, w.capacity_points, w.live_leases, w.max_concurrent_tasks
            ),
        ),
        ("status", w.status.as_str().into()),
        ("online", w.online.to_string()),
        ("heartbeat", time(&w.last_heartbeat)),
        ("trust tier", w.trust_tier.as_str().into()),
        ("flags", flags(w)),
    ];
    for (k, v) in fields {
        println!("{k:<10} {v}");
    }
    println!("\nleases:");
    tasks(&d.leases);
}

pub fn audit(list: &AuditList) {
    let mut t = Table::new(&["time", "event", "actor", "target", "details"]);
    for e in &list.events {
        t.row(vec![
            time(&e.timestamp),
            e.event_type.clone(),
            opt(&e.actor),
            opt(&e.target),
            e.details.to_string(),
        ]);
    }
    t.print();
    let more = if list.total_exact { "" } else { "+" };
    println!(
        "{} of {}{more} matching events",
        list.events.len(),
        list.total
    );
}

pub fn state_text(s: &StateResponse) -> String {
    let mut out = vec![
        format!("workers: {} online of {}", s.workers_online, s.workers_total),
        format!(
            "tasks:   {} ready, {} offered, {} leased, {} in progress, {} blocked, {} PRs open ({} stale)",
            s.tasks_ready, s.tasks_offered, s.tasks_leased, s.tasks_in_progress, s.tasks_blocked, s.tasks_pr_opened, s.tasks_pr_stale
        ),
        format!(
            "done:    {} merged, {} completed, {} failed, {} cancelled",
            s.tasks_merged, s.tasks_completed, s.tasks_failed, s.tasks_cancelled
        ),
        format!(
            "leader:  {} (last sweep {})",
            opt(&s.scheduler.leader),
            s.scheduler.last_sweep_at.as_ref().map_or("-".into(), time)
        ),
        String::new(),
    ];
    let mut t = Table::new(&["repo", "review budget", "open", "stale", "area locks"]);
    for r in &s.repositories {
        t.row(vec![
            r.repo.clone(),
            budget_bar(r.current_open_prs, i64::from(r.max_open_prs)),
            format!("{}/{}", r.current_open_prs, r.max_open_prs),
            r.stale_prs.to_string(),
            r.area_locks_enabled.to_string(),
        ]);
    }
    out.push(t.render());
    out.join("\n")
}

/// `[####------]`: the budget's open slots in use.
pub fn budget_bar(open: i64, max: i64) -> String {
    const WIDTH: i64 = 20;
    let filled = if max <= 0 {
        WIDTH
    } else {
        (open * WIDTH / max).clamp(0, WIDTH)
    };
    format!(
        "[{}{}]",
        "#".repeat(filled as usize),
        "-".repeat((WIDTH - filled) as usize)
    )
}

pub async fn state(client: &Client, watch: bool, json: bool) -> anyhow::Result<()> {
    if !watch {
        let s = client.state().await?;
        if json {
            return super::output::json(&s);
        }
        println!("{}", state_text(&s));
        return Ok(());
    }
    // follow the stream; reconnect when a replica ends it (restart, shutdown)
    loop {
        let mut stream = match client.state_stream().await {
            Ok(s) => s,
            Err(e) if e.is_transient() => {
                eprintln!("{e}; reconnecting in 2 s");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        loop {
            match stream.next().await {
                Ok(Some(s)) if json => println!("{}", serde_json::to_string(&s)?),
                Ok(Some(s)) => {
                    // clear the screen and draw the state again
                    print!(
                        "\x1b[2J\x1b[H{}\n\n(live; Ctrl-C to quit)\n",
                        state_text(&s)
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("{e}; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}
