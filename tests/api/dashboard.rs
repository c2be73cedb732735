//! The dashboard's sign-in and cookie authentication against real replicas: a session
//! works on every replica, actions need the CSRF value, sign-out and token rotation end it.

use owp_pool::app::AppContext;
use owp_pool::auth::{Registration, TokenSet};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn sign_in(app: &TestApp, token: &str) -> (StatusCode, Option<String>, Value) {
    let resp = app
        .http
        .post(format!("{}/v1/dashboard/session", app.base))
        .json(&json!({ "admin_token": token }))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let cookie = resp
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cookie, resp.json().await.unwrap_or(Value::Null))
}

async fn with_cookie(
    app: &TestApp,
    method: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
) -> StatusCode {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header("cookie", cookie)
        .json(&json!({}));
    if let Some(c) = csrf {
        req = req.header("x-owp-csrf", c);
    }
    req.send().await.unwrap().status()
}

#[sqlx::test]
async fn a_session_works_on_every_replica_until_signed_out(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app(pool.clone()).await;
    a.create_repo("r", 3, true).await;
    let task = a.create_task(json!({"repo": "r", "title": "t"})).await;

    let (status, _, body) = sign_in(&a, "wrong").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("auth_error"))
    );
    let (status, set_cookie, body) = sign_in(&a, ADMIN).await;
    assert_eq!(status, StatusCode::CREATED);
    let set_cookie = set_cookie.expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    assert!(
        !set_cookie.contains(ADMIN),
        "the cookie is not the admin token"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let csrf = body["csrf"].as_str().unwrap().to_string();
    assert_eq!(body["actor"], "admin");

    // reads on either replica; the session knows itself on both
    assert_eq!(
        with_cookie(&b, Method::GET, "/v1/admin/state", &cookie, None).await,
        StatusCode::OK
    );
    let current: Value = b
        .http
        .get(format!("{}/v1/dashboard/session", b.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (current["signed_in"].as_bool(), current["csrf"].as_str()),
        (Some(true), Some(csrf.as_str()))
    );
    // an action without the CSRF value is refused and changes nothing; with it, done
    let cancel = format!("/v1/tasks/{task}/cancel");
    assert_eq!(
        with_cookie(&b, Method::POST, &cancel, &cookie, None).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        with_cookie(&b, Method::POST, &cancel, &cookie, Some("guess")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(a.task_row(&task).await.0, "ready");
    assert_eq!(
        with_cookie(&b, Method::POST, &cancel, &cookie, Some(&csrf)).await,
        StatusCode::OK
    );
    assert_eq!(a.task_row(&task).await.0, "cancelled");
    // a worker's route is not opened by the cookie
    assert_eq!(
        with_cookie(&a, Method::GET, "/v1/work", &cookie, None).await,
        StatusCode::UNAUTHORIZED
    );

    // signing out on A ends it on B
    let out = a
        .http
        .delete(format!("{}/v1/dashboard/session", a.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::NO_CONTENT);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        with_cookie(&b, Method::GET, "/v1/admin/state", &cookie, None).await,
        StatusCode::UNAUTHORIZED
    );
}

#[sqlx::test]
async fn rotating_the_admin_token_out_ends_its_sessions(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    let (_, set_cookie, _) = sign_in(&a, ADMIN).await;
    let cookie = set_cookie.unwrap().split(';').next().unwrap().to_string();
    // another replica configured with the new token only
    let ctx = AppContext::new(
        pool,
        test_settings(),
        TokenSet::new(["the-new-token"]),
        Registration::Open,
    );
    let rotated = spawn_ctx(ctx).await;
    assert_eq!(
        with_cookie(&rotated, Method::GET, "/v1/admin/state", &cookie, None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        with_cookie(&a, Method::GET, "/v1/admin/state", &cookie, None).await,
        StatusCode::OK
    );
}

#[sqlx::test]
async fn the_page_and_its_assets_have_types_cache_headers_and_a_csp(pool: PgPool) {
    let app = spawn_app(pool).await;
    let page = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    let js = html
        .split("src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    assert!(js.starts_with("/assets/app.js?v="), "{js}");
    let asset = app
        .http
        .get(format!("{}{js}", app.base))
        .send()
        .await
        .unwrap();
    assert!(asset.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(asset.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    app.call(Method::GET, "/assets/secrets.txt", &[], None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    // the throughput series: every minute of the window
    let t = app
        .admin(Method::GET, "/v1/admin/throughput?minutes=30", None)
        .await
        .expect(StatusCode::OK);
    assert_eq!(t["minutes"].as_array().unwrap().len(), 30);
}
