//! Reputation: metrics from a scripted history with known answers, kept by the counters
//! through retention and repaired by the leader's reconciliation; `min_reputation` gates
//! claims; the automatic promotion rule; admins' PR quality ratings.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn reputation(app: &TestApp, worker_id: &str) -> Value {
    app.admin(
        Method::GET,
        &format!("/v1/workers/{worker_id}/reputation"),
        None,
    )
    .await
    .expect(StatusCode::OK)
}

/// Polls for exactly one new task and returns its id.
async fn take_one(app: &TestApp, w: &Worker) -> String {
    let leases = app.poll(w).await;
    assert_eq!(leases.len(), 1, "{leases:?}");
    leases[0]["task_id"].as_str().unwrap().to_string()
}

async fn report_ok(app: &TestApp, w: &Worker, task: &str, body: Value) {
    app.report(w, task, body).await.expect(StatusCode::OK);
}

async fn run_leader_duties(app: &TestApp) -> owp_pool::scheduler::SweepReport {
    let mut schedule = owp_pool::scheduler::Schedule::now();
    let report = owp_pool::scheduler::sweep_due(&app.ctx, &mut schedule)
        .await
        .expect("duties ran");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    report
}

fn pr(n: usize) -> String {
    format!("https://github.com/acme/r/pull/{n}")
}

#[sqlx::test]
async fn metrics_follow_a_scripted_history(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 50, false).await;
    // one task at a time (max 1 lease), so each poll takes the next one
    let w = app.register("w", &[], 10, 1).await;
    let other = app.register("other", &[], 10, 1).await;

    let fresh = reputation(&app, &w.id).await;
    assert_eq!(fresh["reputation_score"], 50, "{fresh}");
    assert_eq!(fresh["trust_tier"], "untrusted");
    assert_eq!(fresh["metrics"]["total_tasks"], 0);
    assert_eq!(fresh["metrics"]["avg_pr_quality"], Value::Null);

    for i in 0..6 {
        app.create_task(json!({"repo": "acme/r", "title": format!("t{i}"), "priority": 100 - i}))
            .await;
    }
    // 1: a PR, merged and rated 4 by an admin: delivered on time, merged
    let t = take_one(&app, &w).await;
    report_ok(
        &app,
        &w,
        &t,
        json!({"status": "pr_opened", "pr_url": pr(1)}),
    )
    .await;
    app.admin(
        Method::POST,
        &format!("/v1/tasks/{t}/status"),
        Some(json!({"status": "merged", "quality": 4})),
    )
    .await
    .expect(StatusCode::OK);
    // 2: completed, but two hours after the grant of a 1-point task: late
    let t = take_one(&app, &w).await;
    sqlx::query("update leases set granted_at = now() - interval '2 hours' where task_id = $1")
        .bind(&t)
        .execute(&pool)
        .await
        .unwrap();
    report_ok(
        &app,
        &w,
        &t,
        json!({"status": "completed", "pr_url": pr_link("acme/r")}),
    )
    .await;
    // 3: failed
    let t = take_one(&app, &w).await;
    report_ok(&app, &w, &t, json!({"status": "failed"})).await;
    // the failed task is ready again and first in line: the other worker takes it
    let retried = take_one(&app, &other).await;
    assert_eq!(retried, t);
    report_ok(
        &app,
        &other,
        &retried,
        json!({"status": "completed", "pr_url": pr_link("acme/r")}),
    )
    .await;
    // 4: the lease expires
    let t = take_one(&app, &w).await;
    sqlx::query("update tasks set lease_expires_at = now() - interval '1 second' where id = $1")
        .bind(&t)
        .execute(&pool)
        .await
        .unwrap();
    let swept = run_leader_duties(&app).await;
    assert_eq!(swept.expired.leases, 1);
    // the sweep counted the lease it ended itself, once: reconciliation (the same run,
    // after the sweep) found nothing to repair
    assert_eq!(swept.reputation.reconciled.repaired, 0, "{swept:?}");
    let again = take_one(&app, &other).await;
    assert_eq!(again, t);
    report_ok(
        &app,
        &other,
        &again,
        json!({"status": "completed", "pr_url": pr_link("acme/r")}),
    )
    .await;
    // 5: a PR closed unmerged (by the worker's own report)
    let t = take_one(&app, &w).await;
    report_ok(
        &app,
        &w,
        &t,
        json!({"status": "pr_opened", "pr_url": pr(5)}),
    )
    .await;
    report_ok(&app, &w, &t, json!({"status": "closed"})).await;
    // the closed task is back in the queue; `other` takes it out of the way
    let closed_again = take_one(&app, &other).await;
    assert_eq!(closed_again, t);
    // 6: released: not counted at all
    let t = take_one(&app, &w).await;
    report_ok(&app, &w, &t, json!({"status": "released"})).await;

    // delivered 3 (merged PR, late completion, closed PR), failed 1, expired 1
    let r = reputation(&app, &w.id).await;
    let m = &r["metrics"];
    assert_eq!(m["total_tasks"], 5, "{r}");
    assert_eq!(m["completion_rate"], 0.6);
    assert!((m["on_time_delivery"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(m["pr_merge_rate"], 0.5);
    assert_eq!(m["expiry_rate"], 0.2);
    assert_eq!(m["avg_pr_quality"], 4.0);
    // .4 x 4/7 + .2 x 3/5 + .3 x 2/4 + .1 x 1.75/3 = .557
    assert_eq!(r["reputation_score"], 56);
    let o = reputation(&app, &other.id).await;
    assert_eq!(o["metrics"]["total_tasks"], 2, "{o}");
    assert_eq!(o["metrics"]["completion_rate"], 1.0);

    // the worker may read its own, not another's
    let own = app
        .as_worker(
            &w,
            Method::GET,
            &format!("/v1/workers/{}/reputation", w.id),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(own, r);
    app.as_worker(
        &w,
        Method::GET,
        &format!("/v1/workers/{}/reputation", other.id),
        None,
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.admin(Method::GET, "/v1/workers/w_nope/reputation", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call(
        Method::GET,
        &format!("/v1/workers/{}/reputation", w.id),
        &[],
        None,
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    assert_invariants(&pool).await;

    // retention deletes the old history of terminal tasks; the counters keep what it said
    sqlx::query(
        "update leases set granted_at = now() - interval '400 days', ended_at = now() - interval '400 days'
         where ended_at is not null",
    )
    .execute(&pool)
    .await
    .unwrap();
    let pruned = owp_pool::store::retention::prune_batch(
        &owp_pool::store::Db::from(pool.clone()),
        Duration::from_secs(90 * 86_400),
        1000,
    )
    .await
    .unwrap();
    assert!(pruned.leases >= 2, "{pruned:?}");
    assert_eq!(reputation(&app, &w.id).await, r);
    let report = run_leader_duties(&app).await;
    assert_eq!(report.reputation.reconciled.repaired, 0);
    assert!(report.reputation.reconciled.checked >= 2);
    assert_invariants(&pool).await;

    // counters that drift (here: edited by hand) are caught by the checker and repaired
    sqlx::query("update worker_reputation set attempts = 99, prs_merged = 7 where worker_id = $1")
        .bind(&w.id)
        .execute(&pool)
        .await
        .unwrap();
    let v = owp_pool::store::invariants::check(&pool).await.unwrap();
    assert!(
        v.iter()
            .any(|v| v.contains("reputation") && v.contains(&w.id)),
        "{v:?}"
    );
    let report = run_leader_duties(&app).await;
    assert_eq!(report.reputation.reconciled.repaired, 1);
    assert_eq!(reputation(&app, &w.id).await, r);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn quality_is_an_admins_rating_of_a_merge(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    assert_eq!(take_one(&app, &w).await, t);
    report_ok(
        &app,
        &w,
        &t,
        json!({"status": "pr_opened", "pr_url": pr(1)}),
    )
    .await;
    // a worker cannot rate its own PR
    app.report(&w, &t, json!({"status": "merged", "quality": 5}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let path = format!("/v1/tasks/{t}/status");
    for (body, why) in [
        (json!({"status": "merged", "quality": 0}), "quality"),
        (json!({"status": "merged", "quality": 6}), "quality"),
        (json!({"status": "closed", "quality": 3}), "quality"),
    ] {
        let e = app
            .admin(Method::POST, &path, Some(body))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with(why), "{e}");
    }
    // nothing above changed the task
    assert_eq!(app.task_row(&t).await.0, "pr_opened");
    app.admin(
        Method::POST,
        &path,
        Some(json!({"status": "merged", "quality": 2})),
    )
    .await
    .expect(StatusCode::OK);
    let r = reputation(&app, &w.id).await;
    assert_eq!(r["metrics"]["avg_pr_quality"], 2.0, "{r}");
    assert_eq!(r["metrics"]["pr_merge_rate"], 1.0);
    assert_invariants(&pool).await;
}

/// Delivers `n` tasks of the repo on time through the API.
async fn deliver(app: &TestApp, w: &Worker, n: usize) {
    for i in 0..n {
        let t = app
            .create_task(
                json!({"repo": "acme/warmup", "title": format!("warm-up {i}"), "priority": 1000}),
            )
            .await;
        assert_eq!(take_one(app, w).await, t);
        let _ = i;
        report_ok(
            app,
            w,
            &t,
            json!({"status": "pr_opened", "pr_url": pr_link("acme/warmup")}),
        )
        .await;
        app.admin(
            Method::POST,
            &format!("/v1/tasks/{t}/status"),
            Some(json!({"status": "merged"})),
        )
        .await
        .expect(StatusCode::OK);
    }
}

#[sqlx::test]
async fn min_reputation_gates_claims_under_concurrent_polls(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/warmup", 50, false).await;
    app.create_repo("acme/r", 50, false).await;
    let good = app.register("good", &[], 10, 1).await;
    // three merged PRs on time: .4 x 4/5 + .2 x 4/5 + .3 x 4/5 + .1 x 1/2 = .77
    deliver(&app, &good, 3).await;
    assert_eq!(reputation(&app, &good.id).await["reputation_score"], 77);

    let gated = app
        .create_task(json!({"repo": "acme/r", "title": "for reliable hands", "min_reputation": 70, "priority": 50}))
        .await;
    let open = app
        .create_task(json!({"repo": "acme/r", "title": "for anyone", "min_reputation": 50}))
        .await;
    let newcomers =
        futures::future::join_all((0..12).map(|i| app.register_owned(format!("new{i}")))).await;
    // everyone polls at once, several times: only `good` may ever hold the gated task
    for _ in 0..3 {
        let polls = newcomers
            .iter()
            .chain(std::iter::once(&good))
            .map(|w| app.poll(w));
        futures::future::join_all(polls).await;
    }
    let (status, _, holder) = app.task_row(&gated).await;
    assert_eq!(
        (status.as_str(), holder.as_deref()),
        ("leased", Some(good.id.as_str()))
    );
    let (status, _, holder) = app.task_row(&open).await;
    assert_eq!(
        status, "leased",
        "a neutral newcomer (50) may take a task of min 50"
    );
    assert!(newcomers.iter().any(|w| Some(&w.id) == holder.as_ref()));
    let below: i64 = sqlx::query_scalar(
        "select count(*) from leases l join tasks t on t.id = l.task_id
         where t.min_reputation > 50 and l.worker_id <> $1",
    )
    .bind(&good.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        below, 0,
        "a worker below min_reputation was granted a lease"
    );

    // visible in the task views, and editable at any time
    let detail = app
        .admin(Method::GET, &format!("/v1/tasks/{gated}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(detail["min_reputation"], 70);
    let patched = app
        .admin(
            Method::PATCH,
            &format!("/v1/tasks/{gated}"),
            Some(json!({"min_reputation": 90})),
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(patched["min_reputation"], 90);
    for bad in [json!(-1), json!(101), json!("high")] {
        let e = app
            .admin(
                Method::POST,
                "/v1/admin/tasks",
                Some(json!({"repo": "acme/r", "title": "x", "min_reputation": bad})),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(
            e["details"].as_str().unwrap().starts_with("min_reputation"),
            "{e}"
        );
    }
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn the_leader_promotes_by_the_configured_rule(pool: PgPool) {
    let settings = owp_pool::config::Settings {
        promote_basic_after: Some("2 merged, 0.8 completion".into()),
        ..test_settings()
    };
    let app = spawn_app_with(pool.clone(), settings).await;
    app.create_repo("acme/warmup", 50, false).await;
    app.create_repo("acme/r", 50, false).await;
    let sensitive = app
        .create_task(json!({"repo": "acme/r", "title": "tier 1", "tier": 1}))
        .await;
    let w = app.register("w", &[], 10, 1).await;
    let kept_down = app.register("kept-down", &[], 10, 1).await;
    // an admin's explicit choice stands: automatic promotion leaves this worker alone
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/trust-tier", kept_down.id),
        Some(json!({"tier": "untrusted", "reason": "under review"})),
    )
    .await
    .expect(StatusCode::OK);

    deliver(&app, &w, 1).await;
    assert_eq!(
        run_leader_duties(&app).await.reputation.promoted,
        0,
        "one merge is not two"
    );
    deliver(&app, &w, 1).await;
    deliver(&app, &kept_down, 2).await;
    assert_eq!(run_leader_duties(&app).await.reputation.promoted, 1);
    let r = reputation(&app, &w.id).await;
    assert_eq!(r["trust_tier"], "basic");
    let kept = reputation(&app, &kept_down.id).await;
    assert_eq!(kept["trust_tier"], "untrusted");

    let events = app
        .admin(
            Method::GET,
            &format!(
                "/v1/audit/events?target={}&event_type=worker_trust_tier_changed",
                w.id
            ),
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(events["total"], 1, "{events}");
    let e = &events["events"][0];
    assert_eq!(e["actor"], "system");
    assert_eq!(e["details"]["data"], json!({"from": 0, "to": 1}));
    assert!(e["details"]["reason"]
        .as_str()
        .unwrap()
        .contains("2 merged, 0.8 completion"));
    // promoted once: the next run changes nothing
    assert_eq!(run_leader_duties(&app).await.reputation.promoted, 0);
    assert_eq!(take_one(&app, &w).await, sensitive);
    assert_invariants(&pool).await;
}
