//! Who may take work where (issue 27): a repository's allow and deny lists and lowest
//! trust tier, and a worker's own choice of repositories (PATCH /v1/workers/me). Checked
//! on claims and offers, under the repository's lock.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn set_repo(app: &TestApp, body: Value) -> Answer {
    app.admin(Method::POST, "/v1/admin/repos", Some(body)).await
}

async fn patch_me(app: &TestApp, w: &Worker, body: Value) -> Answer {
    app.as_worker(w, Method::PATCH, "/v1/workers/me", Some(body))
        .await
}

fn repos_of(leases: &[Value]) -> Vec<String> {
    let mut r: Vec<String> = leases
        .iter()
        .map(|l| l["repo"].as_str().unwrap().to_string())
        .collect();
    r.sort();
    r
}

#[sqlx::test]
async fn allow_and_deny_lists_and_the_lowest_tier_decide_who_claims(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (a, b, c) = (
        app.register("a", &[], 10, 10).await,
        app.register("b", &[], 10, 10).await,
        app.register("c", &[], 10, 10).await,
    );
    set_repo(
        &app,
        json!({"repo": "acme/closed", "max_open_prs": 10, "allow_workers": [a.id, b.id], "deny_workers": [b.id]}),
    )
    .await
    .expect(StatusCode::CREATED);
    set_repo(
        &app,
        json!({"repo": "acme/senior", "max_open_prs": 10, "min_trust_tier": "trusted"}),
    )
    .await
    .expect(StatusCode::CREATED);
    for repo in ["acme/closed", "acme/senior"] {
        app.create_task(json!({"repo": repo, "title": "t"})).await;
    }
    // b is allowed but denied (deny wins), c is not allowed; nobody is trusted yet
    assert_eq!(app.poll(&b).await.len(), 0);
    assert_eq!(app.poll(&c).await.len(), 0);
    assert_eq!(repos_of(&app.poll(&a).await), ["acme/closed"]);
    // offers follow the same rules
    let offers = app
        .as_worker(&c, Method::POST, "/v1/work/offers", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(offers["offers"], json!([]));
    app.admin(
        Method::POST,
        &format!("/v1/workers/{}/trust-tier", c.id),
        Some(json!({"tier": "trusted", "reason": "earned"})),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(repos_of(&app.poll(&c).await), ["acme/senior"]);

    // the list answers what the repo admits; [] removes the allow list, omitted keeps it
    let listed = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    let closed = &listed["repositories"][0];
    assert_eq!(closed["allow_workers"], json!([a.id, b.id]));
    assert_eq!(closed["deny_workers"], json!([b.id]));
    assert_eq!(listed["repositories"][1]["min_trust_tier"], "trusted");
    set_repo(&app, json!({"repo": "acme/closed", "max_open_prs": 10}))
        .await
        .expect(StatusCode::OK);
    let kept = app
        .admin(Method::GET, "/v1/admin/repos", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        kept["repositories"][0]["allow_workers"],
        json!([a.id, b.id])
    );
    set_repo(
        &app,
        json!({"repo": "acme/closed", "max_open_prs": 10, "allow_workers": [], "deny_workers": []}),
    )
    .await
    .expect(StatusCode::OK);
    app.create_task(json!({"repo": "acme/closed", "title": "open to all"}))
        .await;
    assert_eq!(repos_of(&app.poll(&b).await), ["acme/closed"]);
    assert_invariants(&app.pool).await;
}

#[sqlx::test]
async fn bad_access_settings_name_their_field(pool: PgPool) {
    let app = spawn_app(pool).await;
    for (body, field) in [
        (
            json!({"repo": "r", "min_trust_tier": "boss"}),
            "min_trust_tier",
        ),
        (json!({"repo": "r", "min_trust_tier": 4}), "min_trust_tier"),
        (
            json!({"repo": "r", "allow_workers": [""]}),
            "allow_workers[0]",
        ),
        (
            json!({"repo": "r", "deny_workers": ["w", "x".repeat(101)]}),
            "deny_workers[1]",
        ),
    ] {
        let e = set_repo(&app, body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with(field), "{e}");
    }
    let n: i64 = sqlx::query_scalar("select count(*) from repositories")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing was created");
}

#[sqlx::test]
async fn a_worker_changes_its_own_skills_capacity_and_repos(pool: PgPool) {
    let app = spawn_app(pool).await;
    for repo in ["acme/a", "acme/b"] {
        app.create_repo(repo, 10, false).await;
        app.create_task(json!({"repo": repo, "title": "t", "required_skills": ["go"]}))
            .await;
    }
    let w = app.register("w", &["rust"], 10, 10).await;
    assert_eq!(app.poll(&w).await.len(), 0, "no go skill yet");
    let me = patch_me(
        &app,
        &w,
        json!({"skills": ["Go", "rust"], "repos": ["acme/b"], "max_concurrent_tasks": 5}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(me["skills"], json!(["go", "rust"]));
    assert_eq!(me["repos"], json!(["acme/b"]));
    assert_eq!(
        (
            me["max_concurrent_tasks"].as_i64(),
            me["capacity_points"].as_i64()
        ),
        (Some(5), Some(10))
    );
    assert_eq!(repos_of(&app.poll(&w).await), ["acme/b"]);
    // [] takes work from every repository again
    let me = patch_me(&app, &w, json!({"repos": []}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(me["repos"], Value::Null);
    assert_eq!(me["skills"], json!(["go", "rust"]), "omitted fields stay");
    assert_eq!(repos_of(&app.poll(&w).await), ["acme/a", "acme/b"]);
    // audited, under the worker's name
    let events = app
        .admin(
            Method::GET,
            "/v1/audit/events?event_type=worker_updated",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(events["events"].as_array().unwrap().len(), 2);
    assert_eq!(events["events"][0]["actor"], format!("worker:{}", w.id));
    // bad input names its field and changes nothing; no token, no change
    for (body, field) in [
        (json!({"capacity_points": 0}), "capacity_points"),
        (json!({"max_concurrent_tasks": 101}), "max_concurrent_tasks"),
        (json!({"repos": ["acme/a", ""]}), "repos[1]"),
        (json!({"skills": ["x".repeat(51)]}), "skills[0]"),
    ] {
        let e = patch_me(&app, &w, body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with(field), "{e}");
    }
    app.call(
        Method::PATCH,
        "/v1/workers/me",
        &[],
        Some(json!({"capacity_points": 3})),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "auth_error");
    let cap: i32 = sqlx::query_scalar("select capacity_points from workers where id = $1")
        .bind(&w.id)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(cap, 10);
}

/// Workers poll without pause while an operator denies half of them a repository: once
/// the deny list is answered, no denied worker is granted another lease there.
#[sqlx::test]
async fn a_deny_list_holds_against_polls_racing_it(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10_000, false).await;
    let tasks: Vec<_> = (0..400)
        .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
        .collect();
    app.create_tasks(tasks).await;
    let workers =
        futures::future::join_all((0..12).map(|i| app.register_owned(format!("w{i}")))).await;
    let denied: Vec<String> = workers.iter().step_by(2).map(|w| w.id.clone()).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let polling = futures::future::join_all(workers.iter().map(|w| async {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for lease in app.poll(w).await {
                let id = lease["task_id"].as_str().unwrap();
                app.report(w, id, json!({"status": "completed"}))
                    .await
                    .expect(StatusCode::OK);
            }
        }
    }));
    let deny = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        set_repo(
            &app,
            json!({"repo": "acme/r", "max_open_prs": 10_000, "deny_workers": denied}),
        )
        .await
        .expect(StatusCode::OK);
        let answered: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("select now()")
            .fetch_one(&pool)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        answered
    };
    let (_, answered) = tokio::join!(polling, deny);
    let late: Vec<(String, String)> = sqlx::query_as(
        "select id, worker_id from leases where worker_id = any($1) and granted_at > $2",
    )
    .bind(&denied)
    .bind(answered)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(
        late.is_empty(),
        "denied workers granted leases after the deny: {late:?}"
    );
    let after: i64 = sqlx::query_scalar("select count(*) from leases where granted_at > $1")
        .bind(answered)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(after > 0, "the allowed half kept working");
    assert_invariants(&app.pool).await;
}

/// A poll that chose its candidates before a deny committed, and waited for the repo's lock
/// meanwhile, reads the rule again under the lock and grants nothing.
#[sqlx::test]
async fn a_poll_waiting_on_the_repo_lock_sees_the_deny_that_held_it(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 10, false).await;
    app.create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 10, 10).await;
    // the operator's change, as the upsert makes it: the repo row locked first
    let mut operator = pool.begin().await.unwrap();
    sqlx::query("select 1 from repositories where repo = 'acme/r' for update")
        .execute(&mut *operator)
        .await
        .unwrap();
    let poll = {
        let app = &app;
        let w = &w;
        async move { app.poll(w).await }
    };
    let deny = async {
        until_a_request_waits_on_a_lock(&pool).await;
        sqlx::query("update repositories set deny_workers = array[$1] where repo = 'acme/r'")
            .bind(&w.id)
            .execute(&mut *operator)
            .await
            .unwrap();
        operator.commit().await.unwrap();
    };
    let (leases, ()) = tokio::join!(poll, deny);
    assert_eq!(leases.len(), 0, "granted under a deny: {leases:?}");
    let held: i64 = sqlx::query_scalar("select count(*) from leases")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 0);
}

/// A worker lowering its capacity while its own polls claim: every change either fits what
/// it holds or is refused (409 capacity_in_use), and I2 holds throughout.
#[sqlx::test]
async fn lowering_capacity_below_what_is_held_is_refused_even_racing_polls(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 1000, false).await;
    let tasks: Vec<_> = (0..60)
        .map(|i| json!({"repo": "acme/r", "title": format!("t{i}")}))
        .collect();
    app.create_tasks(tasks).await;
    let w = app.register("w", &[], 50, 20).await;
    assert_eq!(app.poll_query(&w, "?max=3").await.len(), 3);
    let e = patch_me(&app, &w, json!({"max_concurrent_tasks": 2}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(e["details"], "capacity_in_use: 3 points in 3 leases");
    patch_me(&app, &w, json!({"max_concurrent_tasks": 3}))
        .await
        .expect(StatusCode::OK);
    patch_me(&app, &w, json!({"max_concurrent_tasks": 20}))
        .await
        .expect(StatusCode::OK);
    let polls = async {
        for _ in 0..15 {
            app.poll_query(&w, "?max=1").await;
        }
    };
    let lowers = async {
        let mut refused = 0;
        for n in (4..19).rev() {
            let a = patch_me(&app, &w, json!({"max_concurrent_tasks": n})).await;
            match a.status {
                StatusCode::OK => {}
                StatusCode::CONFLICT => {
                    assert!(a.body["details"]
                        .as_str()
                        .unwrap()
                        .starts_with("capacity_in_use"));
                    refused += 1;
                }
                other => panic!("unexpected {other}: {}", a.body),
            }
            assert_invariants(&app.pool).await;
        }
        refused
    };
    // how many were refused depends on the interleaving; that none broke I2 does not
    let ((), _refused) = tokio::join!(polls, lowers);
    assert_invariants(&app.pool).await;
}

/// Each list a stranger or an admin may send stops at its stated limit, by name, and the
/// refused request changes nothing.
#[sqlx::test]
async fn lists_over_their_limits_are_refused_by_name(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    app.create_repo("acme/r", 3, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &["rust"], 5, 1).await;
    let many = |n: usize, prefix: &str| -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    };
    for (body, field) in [
        (json!({"repos": many(101, "acme/x")}), "repos"),
        (json!({"skills": many(51, "s")}), "skills"),
    ] {
        let e = app
            .as_worker(&w, Method::PATCH, "/v1/workers/me", Some(body))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "validation_error");
        assert!(e["details"].as_str().unwrap().starts_with(field), "{e}");
    }
    let skills: Vec<String> = sqlx::query_scalar("select skills from workers where id = $1")
        .bind(&w.id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(skills, ["rust"]);
    let e = app
        .admin(
            Method::POST,
            "/v1/admin/repos",
            Some(json!({"repo": "acme/r", "allow_workers": many(1001, "w_")})),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"].as_str().unwrap().starts_with("allow_workers"),
        "{e}"
    );
    let e = app
        .admin(
            Method::PATCH,
            &format!("/v1/tasks/{t}"),
            Some(json!({"depends_on": many(51, "t_")})),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"].as_str().unwrap().starts_with("depends_on"),
        "{e}"
    );
    let e = app
        .admin(
            Method::POST,
            "/v1/admin/tasks",
            Some(json!({"repo": "acme/r", "title": "u", "depends_on": many(51, "t_")})),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "validation_error");
    assert!(
        e["details"].as_str().unwrap().starts_with("depends_on"),
        "{e}"
    );
    let allow: Option<Vec<String>> =
        sqlx::query_scalar("select allow_workers from repositories where repo = 'acme/r'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(allow, None);
}
