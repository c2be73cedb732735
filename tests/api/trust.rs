//! Trust tiers: a task of tier N goes only to workers of tier N or above; admins set a
//! worker's tier (audited with the reason); new workers start at OWP_DEFAULT_TRUST_TIER.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use crate::support::*;

#[sqlx::test]
async fn a_sensitive_task_waits_for_a_worker_trusted_enough(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let sensitive = app
        .create_task(json!({"repo": "acme/r", "title": "touches auth", "tier": 2}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    let detail = app
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(detail["trust_tier"], "untrusted");
    assert!(
        app.poll(&w).await.is_empty(),
        "an untrusted worker got a tier-2 task"
    );

    let path = format!("/v1/workers/{}/trust-tier", w.id);
    let set = |tier: serde_json::Value| {
        app.admin(
            Method::POST,
            &path,
            Some(json!({"tier": tier, "reason": "merged 5 PRs cleanly"})),
        )
    };
    let r = set(json!("basic")).await.expect(StatusCode::OK);
    assert_eq!(
        (r["trust_tier"].as_str(), r["trust_level"].as_i64()),
        (Some("basic"), Some(1))
    );
    assert!(app.poll(&w).await.is_empty(), "basic is below tier 2");
    let r = set(json!(2)).await.expect(StatusCode::OK);
    assert_eq!(r["trust_tier"], "trusted");
    let leases = app.poll(&w).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["task_id"], sensitive.as_str());

    let state = app.state().await;
    assert_eq!(state["workers_by_trust_tier"]["trusted"], 1);
    assert_eq!(state["workers_by_trust_tier"]["untrusted"], 0);
    assert_eq!(state["workers_by_trust_tier"]["core"], 0);
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
    assert_eq!(events["total"], 2);
    let newest = &events["events"][0];
    assert_eq!(newest["actor"], "admin");
    assert_eq!(newest["details"]["reason"], "merged 5 PRs cleanly");
    assert_eq!(newest["details"]["data"], json!({"from": 1, "to": 2}));

    for (body, field) in [
        (json!({"tier": "overlord", "reason": "x"}), "tier"),
        (json!({"tier": 4, "reason": "x"}), "tier"),
        (json!({"tier": "core", "reason": " "}), "reason"),
    ] {
        let e = app
            .admin(
                Method::POST,
                &format!("/v1/workers/{}/trust-tier", w.id),
                Some(body),
            )
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with(field), "{e}");
    }
    app.admin(
        Method::POST,
        "/v1/workers/w_nope/trust-tier",
        Some(json!({"tier": 1, "reason": "x"})),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn new_workers_start_at_the_default_trust_tier(pool: PgPool) {
    let settings = owp_pool::config::Settings {
        default_trust_tier: 1,
        ..test_settings()
    };
    let app = spawn_app_with(pool, settings).await;
    app.create_repo("acme/r", 5, false).await;
    app.create_task(json!({"repo": "acme/r", "title": "t", "tier": 1}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    let detail = app
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(detail["trust_tier"], "basic");
    assert_eq!(app.poll(&w).await.len(), 1);
}

#[sqlx::test]
async fn no_worker_ever_holds_a_task_above_its_tier_under_concurrent_polls(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 1000, false).await;
    let tasks: Vec<_> = (0..120)
        .map(|i| json!({"repo": "acme/r", "title": format!("t{i}"), "tier": i % 4}))
        .collect();
    app.create_tasks(tasks).await;
    // 16 workers, four of each tier, all polling at once, finishing and polling again
    let workers =
        futures::future::join_all((0..16).map(|i| app.register_owned(format!("w{i}")))).await;
    for (i, w) in workers.iter().enumerate() {
        app.admin(
            Method::POST,
            &format!("/v1/workers/{}/trust-tier", w.id),
            Some(json!({"tier": i % 4, "reason": "test fleet"})),
        )
        .await
        .expect(StatusCode::OK);
    }
    for _ in 0..6 {
        let rounds = workers.iter().map(|w| async {
            for lease in app.poll(w).await {
                let id = lease["task_id"].as_str().unwrap();
                app.report(w, id, json!({"status": "completed"}))
                    .await
                    .expect(StatusCode::OK);
            }
        });
        futures::future::join_all(rounds).await;
    }
    let above: Vec<(String, String)> = sqlx::query_as(
        "select l.id, l.task_id from leases l join tasks t on t.id = l.task_id
         join workers w on w.id = l.worker_id where t.tier > w.trust_tier",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        above.is_empty(),
        "leases above the holder's tier: {above:?}"
    );
    let granted: i64 = sqlx::query_scalar("select count(*) from leases")
        .fetch_one(&pool)
        .await
        .unwrap();
    // 16 workers x 2 leases x 6 rounds at most; every tier got work
    assert!(granted >= 60, "only {granted} leases granted");
    let tiers_done: i64 =
        sqlx::query_scalar("select count(distinct tier) from tasks where status = 'completed'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(tiers_done, 4);
    assert_invariants(&pool).await;
}
