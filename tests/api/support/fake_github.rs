//! A fake GitHub REST API on a local port: issues with comments and labels, pull requests
//! with a state, an issue list for imports. It records every call, and can be told to
//! fail the next calls (500), to accept a comment and then answer 502 (the answer lost),
//! or to answer with its rate limit once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Default)]
pub struct Inner {
    /// (method, path, Authorization)
    pub calls: Vec<(String, String, Option<String>)>,
    /// issue key `owner/repo#n` -> comment bodies
    pub comments: HashMap<String, Vec<String>>,
    /// issue key -> labels it has
    pub labels: HashMap<String, Vec<String>>,
    /// `owner/repo#n` -> (state, merged)
    pub pulls: HashMap<String, (String, bool)>,
    /// open issues listed by the issues API, as JSON
    pub issues: Vec<Value>,
    /// the next this many write calls answer 500
    pub fail_next: usize,
    /// the next comment is recorded, then answered 502
    pub lose_next_answer: bool,
    /// the next call answers with the rate limit (reset in 1 s)
    pub rate_limit_next: bool,
    /// issues whose every write answers 500
    pub broken_issues: Vec<String>,
}

#[derive(Clone, Default)]
pub struct FakeGithub(pub Arc<Mutex<Inner>>);

impl FakeGithub {
    /// Serves on a free port; the API base URL.
    pub async fn start(&self) -> String {
        let app = Router::new()
            .route(
                "/repos/{owner}/{repo}/issues/{n}/comments",
                post(add_comment).get(list_comments),
            )
            .route("/repos/{owner}/{repo}/issues/{n}/labels", post(add_labels))
            .route(
                "/repos/{owner}/{repo}/issues/{n}/labels/{label}",
                delete(remove_label),
            )
            .route("/repos/{owner}/{repo}/pulls/{n}", get(pull))
            .route("/repos/{owner}/{repo}/issues", get(list_issues))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }

    pub fn comments(&self, issue: &str) -> Vec<String> {
        self.with(|g| g.comments.get(issue).cloned().unwrap_or_default())
    }

    pub fn labels(&self, issue: &str) -> Vec<String> {
        self.with(|g| g.labels.get(issue).cloned().unwrap_or_default())
    }
}

fn key(owner: &str, repo: &str, n: &str) -> String {
    format!("{owner}/{repo}#{n}")
}

/// Records the call; an error answer when the fake was told to give one.
fn gate(
    gh: &FakeGithub,
    method: Method,
    path: String,
    headers: &HeaderMap,
    issue: Option<&str>,
) -> Option<Response> {
    let mut g = gh.0.lock().unwrap();
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    g.calls.push((method.to_string(), path, auth));
    if std::mem::take(&mut g.rate_limit_next) {
        let reset = chrono::Utc::now().timestamp() + 1;
        return Some(
            (
                StatusCode::FORBIDDEN,
                [
                    ("x-ratelimit-remaining", "0".to_string()),
                    ("x-ratelimit-reset", reset.to_string()),
                ],
                Json(json!({"message": "API rate limit exceeded"})),
            )
                .into_response(),
        );
    }
    let write = method != Method::GET;
    let broken = issue.is_some_and(|i| g.broken_issues.iter().any(|b| b == i));
    if write && (broken || g.fail_next > 0) {
        g.fail_next = g.fail_next.saturating_sub(1);
        return Some(
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"message": "boom"})),
            )
                .into_response(),
        );
    }
    None
}

async fn add_comment(
    State(gh): State<FakeGithub>,
    Path((owner, repo, n)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let k = key(&owner, &repo, &n);
    if let Some(r) = gate(
        &gh,
        Method::POST,
        format!("/repos/{owner}/{repo}/issues/{n}/comments"),
        &headers,
        Some(&k),
    ) {
        return r;
    }
    let mut g = gh.0.lock().unwrap();
    g.comments
        .entry(k)
        .or_default()
        .push(body["body"].as_str().unwrap_or_default().to_string());
    if std::mem::take(&mut g.lose_next_answer) {
        return (StatusCode::BAD_GATEWAY, "upstream went away").into_response();
    }
    (StatusCode::CREATED, Json(json!({"id": 1}))).into_response()
}

async fn list_comments(
    State(gh): State<FakeGithub>,
    Path((owner, repo, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let k = key(&owner, &repo, &n);
    if let Some(r) = gate(
        &gh,
        Method::GET,
        format!("/repos/{owner}/{repo}/issues/{n}/comments"),
        &headers,
        Some(&k),
    ) {
        return r;
    }
    let comments = gh.comments(&k);
    Json(
        comments
            .into_iter()
            .map(|b| json!({"body": b}))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

async fn add_labels(
    State(gh): State<FakeGithub>,
    Path((owner, repo, n)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let k = key(&owner, &repo, &n);
    if let Some(r) = gate(
        &gh,
        Method::POST,
        format!("/repos/{owner}/{repo}/issues/{n}/labels"),
        &headers,
        Some(&k),
    ) {
        return r;
    }
    let mut g = gh.0.lock().unwrap();
    let labels = g.labels.entry(k).or_default();
    for l in body["labels"].as_array().unwrap() {
        let l = l.as_str().unwrap().to_string();
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    Json(json!([])).into_response()
}

async fn remove_label(
    State(gh): State<FakeGithub>,
    Path((owner, repo, n, label)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    let k = key(&owner, &repo, &n);
    if let Some(r) = gate(
        &gh,
        Method::DELETE,
        format!("/repos/{owner}/{repo}/issues/{n}/labels/{label}"),
        &headers,
        Some(&k),
    ) {
        return r;
    }
    let mut g = gh.0.lock().unwrap();
    let labels = g.labels.entry(k).or_default();
    match labels.iter().position(|l| *l == label) {
        Some(i) => {
            labels.remove(i);
            Json(json!([])).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"message": "Label does not exist"})),
        )
            .into_response(),
    }
}

async fn pull(
    State(gh): State<FakeGithub>,
    Path((owner, repo, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(
        &gh,
        Method::GET,
        format!("/repos/{owner}/{repo}/pulls/{n}"),
        &headers,
        None,
    ) {
        return r;
    }
    let k = key(&owner, &repo, &n);
    let Some((state, merged)) = gh.with(|g| g.pulls.get(&k).cloned()) else {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    };
    Json(json!({"state": state, "merged": merged, "html_url": format!("https://github.com/{owner}/{repo}/pull/{n}")}))
        .into_response()
}

async fn list_issues(
    State(gh): State<FakeGithub>,
    Path((owner, repo)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = gate(
        &gh,
        Method::GET,
        format!("/repos/{owner}/{repo}/issues"),
        &headers,
        None,
    ) {
        return r;
    }
    // as GitHub does: `labels=a,b` lists the issues carrying every one of them
    let wanted: Vec<&str> = q
        .get("labels")
        .map(|l| l.split(',').collect())
        .unwrap_or_default();
    let has = |issue: &serde_json::Value, label: &str| {
        issue["labels"]
            .as_array()
            .is_some_and(|ls| ls.iter().any(|l| l["name"] == label))
    };
    let issues: Vec<serde_json::Value> = gh.with(|g| {
        g.issues
            .iter()
            .filter(|i| wanted.iter().all(|w| has(i, w)))
            .cloned()
            .collect()
    });
    Json(issues).into_response()
}
