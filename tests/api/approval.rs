//! Claim approval (a repository's `claim_approval`): an untrusted worker's claim waits for
//! a maintainer before work starts; approval lets it start, denial hands the task to
//! someone else. Raced against the holder's reports and against each other.

use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn gated_repo(app: &TestApp, repo: &str) {
    app.admin(
        Method::POST,
        "/v1/admin/repos",
        Some(json!({"repo": repo, "max_open_prs": 50, "area_locks_enabled": false, "claim_approval": true})),
    )
    .await
    .expect(StatusCode::CREATED);
}

async fn decide(app: &TestApp, task: &str, verb: &str) -> Answer {
    app.admin(Method::POST, &format!("/v1/tasks/{task}/{verb}"), None)
        .await
}

/// `n` tasks on acme/gated, each claimed by a worker of its own: (task, worker, lease).
async fn hold_one_each(app: &TestApp, n: usize) -> Vec<(String, Worker, String)> {
    app.create_tasks(
        (0..n)
            .map(|i| json!({"repo": "acme/gated", "title": format!("t{i}")}))
            .collect(),
    )
    .await;
    let mut held = Vec::new();
    for i in 0..n {
        let w = app.register(&format!("w{i}"), &[], 10, 1).await;
        let l = app.poll(&w).await;
        let (task, lease) = (l[0]["task_id"].as_str(), l[0]["lease_id"].as_str());
        held.push((task.unwrap().to_string(), w, lease.unwrap().to_string()));
    }
    held
}

async fn set_tier(app: &TestApp, w: &Worker, tier: &str) {
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/trust-tier", w.id),
        Some(json!({"tier": tier, "reason": "test"})),
    )
    .await
    .expect(StatusCode::OK);
}

#[sqlx::test]
async fn an_untrusted_workers_claim_waits_for_approval(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    gated_repo(&app, "acme/gated").await;
    let t = app
        .create_task(json!({"repo": "acme/gated", "title": "t"}))
        .await;
    let w = app.register("new", &[], 5, 2).await;
    let leases = app.poll(&w).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["awaiting_approval"], true);
    let lease = leases[0]["lease_id"].as_str().unwrap().to_string();

    // no work reported until approved, with or without the lease id (both paths)
    for body in [
        json!({"status": "in_progress", "lease_id": lease}),
        json!({"status": "in_progress"}),
    ] {
        let e = app
            .report(&w, &t, body)
            .await
            .expect_error(StatusCode::FORBIDDEN, "forbidden");
        assert_eq!(e["details"], "awaiting_approval");
    }
    let repos = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(repos["repositories"][0]["claim_approval"], true);
    assert_eq!(repos["repositories"][0]["awaiting_approval"], 1);

    let ok = decide(&app, &t, "approve").await.expect(StatusCode::OK);
    assert_eq!(ok["status"], "leased");
    assert_eq!(app.poll(&w).await[0]["awaiting_approval"], false);
    app.report(&w, &t, json!({"status": "in_progress", "lease_id": lease}))
        .await
        .expect(StatusCode::OK);
    // decided once
    let again = decide(&app, &t, "approve")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(again["details"], "not_awaiting_approval");
    decide(&app, &t, "deny")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert!(audit_kinds(&pool, &t)
        .await
        .contains(&"claim_approved".to_string()));
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn trusted_workers_and_other_repositories_need_no_approval(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    gated_repo(&app, "acme/gated").await;
    app.create_repo("acme/open", 10, false).await;
    let gated = app
        .create_task(json!({"repo": "acme/gated", "title": "g"}))
        .await;
    let open = app
        .create_task(json!({"repo": "acme/open", "title": "o"}))
        .await;
    let basic = app.register("basic", &[], 5, 1).await;
    set_tier(&app, &basic, "basic").await;
    let leases = app.poll(&basic).await;
    assert_eq!(leases[0]["awaiting_approval"], false);
    let first = leases[0]["task_id"].as_str().unwrap().to_string();
    app.report(&basic, &first, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
    let new = app.register("new", &[], 5, 1).await;
    let leases = app.poll(&new).await;
    let second = leases[0]["task_id"].as_str().unwrap();
    assert_eq!(
        [first.as_str(), second]
            .iter()
            .filter(|t| **t == gated)
            .count(),
        1
    );
    // the untrusted worker waits only where the repo asks
    assert_eq!(leases[0]["awaiting_approval"], second == gated);
    if second == open {
        app.report(&new, &open, json!({"status": "in_progress"}))
            .await
            .expect(StatusCode::OK);
    }
}

#[sqlx::test]
async fn a_denied_claim_goes_to_someone_else_and_costs_the_worker_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    gated_repo(&app, "acme/gated").await;
    let t = app
        .create_task(json!({"repo": "acme/gated", "title": "t"}))
        .await;
    let w = app.register("new", &[], 5, 2).await;
    let lease = app.poll(&w).await[0]["lease_id"]
        .as_str()
        .unwrap()
        .to_string();
    let denied = decide(&app, &t, "deny").await.expect(StatusCode::OK);
    assert_eq!(denied["status"], "ready");
    // the holder's next report learns the lease is gone
    app.report(&w, &t, json!({"status": "in_progress", "lease_id": lease}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert!(
        app.poll(&w).await.is_empty(),
        "never to the denied worker again"
    );
    let other = app.register("other", &[], 5, 2).await;
    let leases = app.poll(&other).await;
    assert_eq!(
        (
            leases[0]["task_id"].as_str(),
            &leases[0]["awaiting_approval"]
        ),
        (Some(t.as_str()), &json!(true))
    );
    let rep = app
        .admin(
            Method::GET,
            &format!("/v1/workers/{}/reputation", w.id),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        rep["metrics"]["total_tasks"], 0,
        "a denial is no attempt: {rep}"
    );
    let reasons: Vec<String> = sqlx::query_scalar(
        "select reason from audit_events where task_id = $1 and kind = 'task_requeued'",
    )
    .bind(&t)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(reasons, ["claim_denied"]);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_waiting_claim_may_be_released_and_an_accepted_offer_waits_too(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    gated_repo(&app, "acme/gated").await;
    let t = app
        .create_task(json!({"repo": "acme/gated", "title": "t"}))
        .await;
    let w = app.register("new", &[], 5, 1).await;
    app.poll(&w).await;
    app.report(&w, &t, json!({"status": "released"}))
        .await
        .expect(StatusCode::OK);
    decide(&app, &t, "approve")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");

    let o = app.register("offered", &[], 5, 1).await;
    let offers = app
        .as_worker(&o, Method::POST, "/v1/work/offers", None)
        .await
        .expect(StatusCode::OK);
    let offer = offers["offers"][0]["offer_id"]
        .as_str()
        .unwrap()
        .to_string();
    app.as_worker(
        &o,
        Method::POST,
        &format!("/v1/work/offers/{offer}/accept"),
        None,
    )
    .await
    .expect(StatusCode::CREATED);
    let leases = app.poll(&o).await;
    assert_eq!(leases[0]["awaiting_approval"], true);
    app.report(&o, &t, json!({"status": "in_progress"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    assert_invariants(&pool).await;
}

/// Each worker hammers its waiting claim with `in_progress` while the admin approves: no
/// report may land before the approval (the checker reads the order from the audit log),
/// and every worker is working in the end.
#[sqlx::test]
async fn no_report_lands_before_approval_even_racing_it(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    gated_repo(&app, "acme/gated").await;
    let held: HashMap<_, _> = hold_one_each(&app, 12)
        .await
        .into_iter()
        .map(|(t, w, lease)| (t, (w, lease)))
        .collect();
    assert_eq!(held.len(), 12);
    let reporters = held.iter().map(|(t, (w, lease))| {
        let app = &app;
        async move {
            // guarded (with the lease) and locking (without) paths, alternately
            for k in 0..30 {
                let body = if k % 2 == 0 {
                    json!({"status": "in_progress", "lease_id": lease})
                } else {
                    json!({"status": "in_progress"})
                };
                let a = app.report(w, t, body).await;
                match a.status {
                    StatusCode::OK => return true,
                    StatusCode::FORBIDDEN => assert_eq!(a.body["details"], "awaiting_approval"),
                    s => panic!("{s}: {}", a.body),
                }
            }
            false
        }
    });
    let approvals = held.keys().map(|t| {
        let app = &app;
        async move { decide(app, t, "approve").await.expect(StatusCode::OK) }
    });
    let (_, _) = tokio::join!(
        futures::future::join_all(reporters),
        futures::future::join_all(approvals)
    );
    for (t, (w, _)) in &held {
        app.report(w, t, json!({"status": "in_progress"}))
            .await
            .expect(StatusCode::OK);
    }
    assert_invariants(&pool).await;
}

/// Approve, deny and the holder's release race on every task: exactly one of them wins,
/// and what the task shows is what the winner did.
#[sqlx::test]
async fn approval_and_denial_race_each_other_and_the_holder(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    gated_repo(&app, "acme/gated").await;
    let held: Vec<_> = hold_one_each(&app, 10)
        .await
        .into_iter()
        .map(|(t, w, _)| (t, w))
        .collect();
    let races = held.iter().map(|(t, w)| {
        let app = &app;
        async move {
            let (a, d, r) = tokio::join!(
                decide(app, t, "approve"),
                decide(app, t, "deny"),
                app.report(w, t, json!({"status": "released"}))
            );
            let won = [a.status, d.status, r.status]
                .iter()
                .filter(|s| **s == StatusCode::OK)
                .count();
            let status: String = sqlx::query_scalar("select status from tasks where id = $1")
                .bind(t)
                .fetch_one(&app.pool)
                .await
                .unwrap();
            (won, a.status, d.status, r.status, status)
        }
    });
    for (won, a, d, r, status) in futures::future::join_all(races).await {
        // approval then release both succeed; denial excludes both others
        if d == StatusCode::OK {
            assert_eq!((won, status.as_str()), (1, "ready"));
        } else if a == StatusCode::OK && r == StatusCode::OK {
            assert_eq!(status, "ready", "approved, then released");
        } else if a == StatusCode::OK {
            assert_eq!(status, "leased");
        } else {
            assert_eq!((r, status.as_str()), (StatusCode::OK, "ready"));
        }
    }
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn the_admin_cli_sets_claim_approval_and_decides(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let dir = cli::Scratch::new();
    let admin = |args: &[&str]| {
        let mut all: Vec<String> = ["admin", "--url", &app.base, "--admin-token", ADMIN]
            .iter()
            .map(|s| s.to_string())
            .collect();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    };
    let run = |args: Vec<String>| {
        let dir = &dir;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cli::ok(&cli::run(&dir.0, &args).await)
        }
    };
    run(admin(&[
        "repo",
        "add",
        "acme/gated",
        "--claim-approval",
        "true",
    ]))
    .await;
    let listed: Value =
        serde_json::from_str(&run(admin(&["--json", "repo", "list"])).await).unwrap();
    assert_eq!(listed["repositories"][0]["claim_approval"], true);
    let t = app
        .create_task(json!({"repo": "acme/gated", "title": "t"}))
        .await;
    let w = app.register("new", &[], 5, 1).await;
    app.poll(&w).await;
    let out = run(admin(&["task", "deny", &t])).await;
    assert!(out.contains("denied"), "{out}");
    let other = app.register("other", &[], 5, 1).await;
    app.poll(&other).await;
    let out = run(admin(&["task", "approve", &t])).await;
    assert!(out.contains("approved"), "{out}");
    app.report(&other, &t, json!({"status": "in_progress"}))
        .await
        .expect(StatusCode::OK);
}
