//! Fair share between repositories (`fair_share` on a repository): a claim takes from the
//! repository with the least open work per unit of weight first, and within it the highest
//! priority, oldest first. One repository's high-priority backlog no longer starves the
//! others.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::{pr_link, spawn_app, TestApp, Worker};

async fn repo(app: &TestApp, name: &str, weight: i64) {
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": name, "max_open_prs": 1000, "area_locks_enabled": false, "fair_share": weight})),
    )
    .await
    .expect(StatusCode::CREATED);
}

async fn tasks(app: &TestApp, repo: &str, n: usize, priority: i64) {
    app.create_tasks(
        (0..n)
            .map(|i| json!({"repo": repo, "title": format!("{repo} {i}"), "priority": priority}))
            .collect(),
    )
    .await;
}

/// Polls once and opens a PR for what it got (a PR keeps its review slot open); the repo.
async fn take_one(app: &TestApp, w: &Worker) -> Option<String> {
    let leases = app.poll(w).await;
    let l: &Value = leases.first()?;
    let (task, repo) = (l["task_id"].as_str()?, l["repo"].as_str()?);
    app.report(
        w,
        task,
        json!({"status": "pr_opened", "lease_id": l["lease_id"], "pr_url": pr_link(repo)}),
    )
    .await
    .expect(StatusCode::OK);
    Some(repo.to_string())
}

#[sqlx::test]
async fn equal_shares_alternate_and_priority_orders_within_a_repository(pool: PgPool) {
    let app = spawn_app(pool).await;
    repo(&app, "acme/a", 1).await;
    repo(&app, "acme/b", 1).await;
    // acme/b's work is all more urgent than acme/a's: before fair share, it went first
    for (repo, title, priority) in [
        ("acme/a", "a-low", 1),
        ("acme/a", "a-high", 5),
        ("acme/b", "b-1", 90),
        ("acme/b", "b-2", 80),
    ] {
        app.create_task(json!({"repo": repo, "title": title, "priority": priority}))
            .await;
    }
    let w = app.register("w", &[], 10, 1).await;
    let mut titles = Vec::new();
    for _ in 0..4 {
        let leases = app.poll(&w).await;
        let l = &leases[0];
        titles.push(l["title"].as_str().unwrap().to_string());
        let repo = l["repo"].as_str().unwrap();
        app.report(
            &w,
            l["task_id"].as_str().unwrap(),
            json!({"status": "pr_opened", "lease_id": l["lease_id"], "pr_url": pr_link(repo)}),
        )
        .await
        .expect(StatusCode::OK);
    }
    // ties go to the repository named first; then whichever has less open work
    assert_eq!(titles, ["a-high", "b-1", "a-low", "b-2"]);
}

#[sqlx::test]
async fn two_repositories_share_a_fleet_by_their_weights_whatever_their_priorities(pool: PgPool) {
    // acme/big weighs 3, acme/small 1 and has every urgent task; 12 workers poll at once,
    // each opening a PR for what it gets, until 160 PRs are open
    let app = spawn_app(pool.clone()).await;
    repo(&app, "acme/big", 3).await;
    repo(&app, "acme/small", 1).await;
    tasks(&app, "acme/big", 150, 0).await;
    tasks(&app, "acme/small", 150, 100).await;
    let mut workers = Vec::new();
    for i in 0..12 {
        workers.push(app.register(&format!("w{i}"), &[], 10, 1).await);
    }
    let total = 160;
    let taken = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let runs = workers.iter().map(|w| {
        let (app, taken) = (&app, taken.clone());
        async move {
            let mut mine = HashMap::<String, usize>::new();
            while taken.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                let repo = take_one(app, w).await.expect("work is left in both");
                *mine.entry(repo).or_default() += 1;
            }
            mine
        }
    });
    let mut by_repo = HashMap::<String, usize>::new();
    for mine in futures::future::join_all(runs).await {
        for (repo, n) in mine {
            *by_repo.entry(repo).or_default() += n;
        }
    }
    let (big, small) = (by_repo["acme/big"], by_repo["acme/small"]);
    assert_eq!(big + small, total);
    // 3:1 is 120:40; racing polls may read the same counts, a few either way
    assert!(
        (112..=128).contains(&big),
        "acme/big got {big}, acme/small {small} of {total}"
    );
    let open: Vec<(String, i64)> = sqlx::query_as(
        "select repo, count(*) from tasks where status = 'pr_opened' group by repo order by repo",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        open,
        [
            ("acme/big".to_string(), big as i64),
            ("acme/small".to_string(), small as i64)
        ]
    );
    crate::support::assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_weight_is_set_shown_and_bounded(pool: PgPool) {
    let app = spawn_app(pool).await;
    repo(&app, "acme/a", 7).await;
    for bad in [0, 1001] {
        let a = app
            .admin(
                Method::POST,
                "/v1/admin/repos",
                Some(json!({"repo": "acme/a", "max_open_prs": 3, "fair_share": bad})),
            )
            .await;
        let e = a.expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            e["details"].as_str().unwrap().starts_with("fair_share"),
            "{e}"
        );
    }
    // omitted keeps it
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": "acme/a", "max_open_prs": 4})),
    )
    .await
    .expect(StatusCode::OK);
    let list = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(list["repositories"][0]["fair_share"], 7);
    assert_eq!(list["repositories"][0]["max_open_prs"], 4);
}
