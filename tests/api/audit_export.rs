//! The audit log as a download (`GET /v1/audit/export`): what the list's filters match,
//! every page of it, in CSV or JSON lines, safe to open in a spreadsheet.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::support::*;

async fn export(app: &TestApp, query: &str) -> (StatusCode, String, String) {
    let resp = app
        .http
        .get(format!("{}/v1/audit/export?{query}", app.base))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let kind = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, kind, resp.text().await.unwrap())
}

#[sqlx::test]
async fn the_export_carries_every_page_the_filters_match(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/big", 3, false).await;
    app.create_repo("acme/small", 3, false).await;
    for batch in 0..3 {
        let tasks: Vec<Value> = (0..500)
            .map(|i| json!({"repo": "acme/big", "title": format!("t{batch}-{i}")}))
            .collect();
        app.create_tasks(tasks).await;
    }
    app.create_task(json!({"repo": "acme/small", "title": "one"}))
        .await;

    let (status, kind, body) = export(&app, "repo=acme/big").await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("application/x-ndjson"), "{kind}");
    let events: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        events.len(),
        1 + 1500,
        "the repo's creation and its 1,500 tasks, past one page"
    );
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|p| p[0] > p[1]),
        "newest first, no repeats"
    );
    assert!(events.iter().all(|e| e["details"]["repo"] == "acme/big"));
    // the same as the list's first page, event for event
    let page = app
        .admin(
            Method::GET,
            "/v1/audit/events?repo=acme/big&limit=200",
            None,
        )
        .await
        .expect(StatusCode::OK);
    assert_eq!(&Value::Array(events[..200].to_vec()), &page["events"]);
}

#[sqlx::test]
async fn a_csv_export_never_hands_a_spreadsheet_a_formula(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.create_repo("acme/r", 3, false).await;
    let t = app
        .create_task(json!({"repo": "acme/r", "title": "t"}))
        .await;
    let w = app.register("w", &[], 5, 1).await;
    app.poll(&w).await;
    app.report(
        &w,
        &t,
        json!({"status": "in_progress", "message": "=HYPERLINK(\"http://evil\",\"x\")"}),
    )
    .await
    .expect(StatusCode::OK);
    let (status, kind, body) = export(&app, &format!("target={t}&format=csv")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(kind.starts_with("text/csv"), "{kind}");
    let mut lines = body.lines();
    assert_eq!(
        lines.next(),
        Some("id,timestamp,event_type,actor,target,details")
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 3, "created, granted, in progress: {body}");
    // the message sits inside the details' JSON, quoted: no cell starts with `=`
    for row in &rows {
        for cell in row.split(',') {
            assert!(!cell.starts_with('='), "{row}");
        }
    }
    assert!(body.contains("HYPERLINK"));
    let (status, _, body) = export(&app, "format=xml").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("format"));
}
