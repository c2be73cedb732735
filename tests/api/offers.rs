//! Offers: a reserved task holds capacity, slot and area until accepted (a lease),
//! rejected (ready again, never offered to that worker again) or expired; answers race
//! safely; offers and claims mixed under concurrency keep every invariant.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn offers(app: &TestApp, w: &Worker) -> Vec<Value> {
    let body = app
        .as_worker(w, Method::POST, "/v1/work/offers", None)
        .await
        .expect(StatusCode::OK);
    body["offers"].as_array().unwrap().clone()
}

async fn answer(app: &TestApp, w: &Worker, offer: &str, verb: &str, body: Option<Value>) -> Answer {
    app.as_worker(
        w,
        Method::POST,
        &format!("/v1/work/offers/{offer}/{verb}"),
        body,
    )
    .await
}

fn id(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_string()
}

async fn run_duties(app: &TestApp) {
    let mut schedule = owp_pool::scheduler::Schedule::now();
    let report = owp_pool::scheduler::sweep_due(&app.ctx, &mut schedule)
        .await
        .expect("duties ran");
    assert!(report.failed.is_empty(), "{:?}", report.failed);
}

#[sqlx::test]
async fn an_offer_reserves_its_task_until_accepted(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 1, true).await;
    let a = app
        .create_task(json!({"repo": "acme/r", "title": "a", "area": "x", "estimate_points": 3, "priority": 20}))
        .await;
    app.create_task(json!({"repo": "acme/r", "title": "b", "area": "y"}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    let other = app.register("other", &[], 5, 2).await;

    // `max` is a query parameter like GET /v1/work's (a fuzzer once found it read as JSON)
    let none = app
        .as_worker(&w, Method::POST, "/v1/work/offers?max=0", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(none["offers"], json!([]));
    let made = offers(&app, &w).await;
    assert_eq!(made.len(), 1, "the repo's budget of 1 allows one: {made:?}");
    let o = &made[0];
    assert!(id(o, "offer_id").starts_with("o_"));
    assert_eq!(o["task_id"], a.as_str());
    assert_eq!(o["repo"], "acme/r");
    assert_eq!(o["estimate_points"], 3);
    assert_eq!(o["area"], "x");
    let offer = id(o, "offer_id");

    // reserved: the slot is taken for everyone, the capacity is the offeree's
    let state = app.state().await;
    assert_eq!(state["tasks_offered"], 1);
    assert_eq!(state["repositories"][0]["current_open_prs"], 1);
    assert!(app.poll(&other).await.is_empty());
    assert!(offers(&app, &other).await.is_empty());
    let detail = app
        .admin(Method::GET, &format!("/v1/workers/{}", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(detail["used_points"], 3);
    let task = app
        .admin(Method::GET, &format!("/v1/tasks/{a}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        (task["status"].as_str(), task["worker_id"].as_str()),
        (Some("offered"), Some(w.id.as_str()))
    );
    // a report cannot skip the acceptance
    app.report(&w, &a, json!({"status": "in_progress"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");

    answer(&app, &other, &offer, "accept", None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    answer(&app, &w, "o_nope", "accept", None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // paused by an admin: no new work, the offer stays open
    app.admin(Method::POST, &format!("/v1/workers/{}/pause", w.id), None)
        .await
        .expect(StatusCode::OK);
    answer(&app, &w, &offer, "accept", None)
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    app.admin(Method::POST, &format!("/v1/workers/{}/resume", w.id), None)
        .await
        .expect(StatusCode::OK);
    let accepted = answer(&app, &w, &offer, "accept", None)
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(accepted["task_id"], a.as_str());
    let lease = id(&accepted, "lease_id");
    assert!(lease.starts_with("l_") && accepted["lease_expires_at"].is_string());
    let e = answer(&app, &w, &offer, "accept", None)
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "offer_accepted");

    let leases = app.poll(&w).await;
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0]["lease_id"], lease.as_str());
    app.report(&w, &a, json!({"status": "completed", "lease_id": lease}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        audit_kinds(&pool, &a).await,
        [
            "task_created",
            "task_offered",
            "lease_granted",
            "task_status_changed"
        ]
    );
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn a_rejected_task_is_ready_again_and_not_offered_back(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "vague"}))
        .await;
    let ws: Vec<Worker> =
        futures::future::join_all((0..4).map(|i| app.register_owned(format!("w{i}")))).await;

    let reasons = [
        "unclear_requirements",
        "unclear_requirements",
        "too_large",
        "unclear_requirements",
    ];
    for (w, reason) in ws.iter().zip(reasons) {
        let made = offers(&app, w).await;
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(made[0]["task_id"], t.as_str());
        let offer = id(&made[0], "offer_id");
        let e = answer(&app, w, &offer, "reject", Some(json!({"reason": "boring"})))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with("reason"), "{e}");
        let r = answer(&app, w, &offer, "reject", Some(json!({"reason": reason})))
            .await
            .expect(StatusCode::OK);
        assert_eq!(
            (r["task_id"].as_str(), r["status"].as_str()),
            (Some(t.as_str()), Some("ready"))
        );
        let again = answer(&app, w, &offer, "reject", Some(json!({"reason": reason})))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(again["details"], "offer_rejected");
        assert!(
            offers(&app, w).await.is_empty(),
            "offered again to a worker that rejected it"
        );
        assert_eq!(app.task_row(&t).await.0, "ready");
    }
    let detail = app
        .admin(Method::GET, &format!("/v1/tasks/{t}"), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        detail["offer_rejections"],
        json!({"unclear_requirements": 3, "too_large": 1})
    );
    assert_eq!(detail["attempt"], 0, "a rejection is no failed attempt");
    // maintainers learn the task is unclear
    let a = app
        .admin(Method::GET, "/v1/analytics/repositories/acme/r", None)
        .await
        .expect(StatusCode::OK);
    assert!(
        a["metrics"]["bottlenecks"]
            .as_array()
            .unwrap()
            .contains(&json!("unclear_tasks")),
        "{a}"
    );
    // claiming directly is still open to them
    assert_eq!(app.poll(&ws[0]).await.len(), 1);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn unanswered_offers_expire_without_counting_an_attempt(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, true).await;
    let t1 = app
        .create_task(json!({"repo": "acme/r", "title": "one", "area": "x", "priority": 20}))
        .await;
    let t2 = app
        .create_task(json!({"repo": "acme/r", "title": "two", "area": "y"}))
        .await;
    let w = app.register("w", &[], 10, 5).await;
    let made = offers(&app, &w).await;
    assert_eq!(made.len(), 2);
    let (o1, o2) = (id(&made[0], "offer_id"), id(&made[1], "offer_id"));
    assert_eq!(made[0]["task_id"], t1.as_str());
    sqlx::query("update offers set expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    // answered after its expiry, before any sweep: refused, and the task is free at once
    let e = answer(&app, &w, &o1, "accept", None)
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "offer_expired");
    assert_eq!(app.task_row(&t1).await, ("ready".into(), 0, None));
    // the sweep returns the other one
    run_duties(&app).await;
    assert_eq!(app.task_row(&t2).await, ("ready".into(), 0, None));
    let e = answer(&app, &w, &o2, "reject", Some(json!({"reason": "other"})))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "offer_expired");
    let kinds = audit_kinds(&pool, &t2).await;
    assert_eq!(kinds, ["task_created", "task_offered", "offer_expired"]);
    // both may be offered again, to the same worker: an expiry is no rejection
    assert_eq!(offers(&app, &w).await.len(), 2);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn admins_withdraw_offers_by_cancelling_requeueing_or_revoking(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    let ids = app
        .create_tasks(
            (0..3)
                .map(|i| json!({"repo": "acme/r", "title": format!("t{i}"), "priority": 10 - i}))
                .collect(),
        )
        .await;
    let w = app.register("w", &[], 10, 5).await;
    let made = offers(&app, &w).await;
    assert_eq!(made.len(), 3);
    app.admin(Method::POST, &format!("/v1/tasks/{}/cancel", ids[0]), None)
        .await
        .expect(StatusCode::OK);
    app.admin(Method::POST, &format!("/v1/tasks/{}/requeue", ids[1]), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.task_row(&ids[1]).await.0, "ready");
    let e = answer(&app, &w, &id(&made[0], "offer_id"), "accept", None)
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "offer_expired");
    app.admin(Method::POST, &format!("/v1/workers/{}/revoke", w.id), None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.task_row(&ids[2]).await, ("ready".into(), 0, None));
    let outcomes: Vec<String> = sqlx::query_scalar("select outcome from offers order by id")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(outcomes, ["withdrawn", "withdrawn", "withdrawn"]);
    assert_invariants(&pool).await;
}

#[sqlx::test]
async fn concurrent_accepts_of_one_offer_grant_one_lease(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 5, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 2).await;
    let offer = id(&offers(&app, &w).await[0], "offer_id");
    let answers =
        futures::future::join_all((0..16).map(|_| answer(&app, &w, &offer, "accept", None))).await;
    let won: Vec<_> = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for a in answers.iter().filter(|a| a.status != StatusCode::CREATED) {
        assert_eq!(a.status, StatusCode::CONFLICT, "{a:?}");
        assert_eq!(a.body["details"], "offer_accepted");
    }
    let leases: i64 = sqlx::query_scalar("select count(*) from leases where task_id = $1")
        .bind(&t)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(leases, 1);
    assert_eq!(app.task_row(&t).await.0, "leased");
    assert_invariants(&pool).await;
}

/// Half the fleet claims, half takes offers (accepting, rejecting or ignoring them), while
/// the leader expires offers; the checker runs throughout.
#[sqlx::test]
async fn offers_and_claims_mixed_under_concurrency_keep_the_invariants(pool: PgPool) {
    let settings = owp_pool::config::Settings {
        offer_ttl: Duration::from_secs(1),
        ..test_settings()
    };
    let app = spawn_app_with(pool.clone(), settings).await;
    for r in ["acme/a", "acme/b", "acme/c"] {
        app.create_repo(r, 3, true).await;
    }
    let tasks: Vec<Value> = (0..90)
        .map(|i| {
            let repo = ["acme/a", "acme/b", "acme/c"][i % 3];
            json!({"repo": repo, "title": format!("t{i}"),
                   "area": format!("area{}", i % 5), "estimate_points": 1 + i % 3})
        })
        .collect();
    app.create_tasks(tasks).await;
    let ws: Vec<Worker> =
        futures::future::join_all((0..12).map(|i| app.register_owned(format!("w{i}")))).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (pool, stop, ctx) = (pool.clone(), stop.clone(), app.ctx.clone());
        tokio::spawn(async move {
            let mut checks = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let v = owp_pool::store::invariants::check(&pool).await.unwrap();
                assert!(
                    v.is_empty(),
                    "invariants violated mid-run:\n{}",
                    v.join("\n")
                );
                let mut schedule = owp_pool::scheduler::Schedule::now();
                owp_pool::scheduler::sweep_due(&ctx, &mut schedule).await;
                checks += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            checks
        })
    };
    let rounds = ws.iter().enumerate().map(|(i, w)| {
        let app = &app;
        async move {
            for round in 0..8 {
                if i % 2 == 0 {
                    for lease in app.poll(w).await {
                        let t = lease["task_id"].as_str().unwrap();
                        let body = json!({"status": "completed", "lease_id": lease["lease_id"]});
                        let a = app.report(w, t, body).await;
                        assert_eq!(a.status, StatusCode::OK, "{a:?}");
                    }
                    continue;
                }
                for (k, o) in offers(app, w).await.iter().enumerate() {
                    let offer = id(o, "offer_id");
                    match (round + k) % 3 {
                        0 => {
                            let a = answer(app, w, &offer, "accept", None).await;
                            if a.status == StatusCode::CREATED {
                                let t = id(o, "task_id");
                                let body =
                                    json!({"status": "completed", "lease_id": a.body["lease_id"]});
                                app.report(w, &t, body).await.expect(StatusCode::OK);
                            } else {
                                // the leader expired it meanwhile
                                assert_eq!(a.body["details"], "offer_expired", "{a:?}");
                            }
                        }
                        1 => {
                            let a = answer(
                                app,
                                w,
                                &offer,
                                "reject",
                                Some(json!({"reason": "insufficient_time"})),
                            )
                            .await;
                            assert!(
                                a.status == StatusCode::OK || a.body["details"] == "offer_expired",
                                "{a:?}"
                            );
                        }
                        // left unanswered: it expires
                        _ => {}
                    }
                }
            }
        }
    });
    futures::future::join_all(rounds).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = checker.await.unwrap();
    assert!(checks > 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_duties(&app).await;
    let open: i64 = sqlx::query_scalar("select count(*) from offers where ended_at is null")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "every unanswered offer expired");
    let offered: i64 = sqlx::query_scalar("select count(*) from tasks where status = 'offered'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(offered, 0);
    // nothing was lost or left stuck: one worker drains the rest
    let drain = app.register("drain", &[], 100, 20).await;
    for _ in 0..100 {
        let leases = app.poll(&drain).await;
        if leases.is_empty() {
            break;
        }
        for l in leases {
            let body = json!({"status": "completed", "lease_id": l["lease_id"]});
            app.report(&drain, l["task_id"].as_str().unwrap(), body)
                .await
                .expect(StatusCode::OK);
        }
    }
    let done: i64 = sqlx::query_scalar("select count(*) from tasks where status = 'completed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(done, 90, "every task is done in the end");
    let accepted: i64 =
        sqlx::query_scalar("select count(*) from offers where outcome = 'accepted'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(accepted > 0);
    assert_invariants(&pool).await;
}
