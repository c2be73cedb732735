//! A notification receiver on a local port: records every delivery (headers and body) and
//! answers 200, or what it is told to (the next few with 500, or always one status).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub raw: Vec<u8>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct Inner {
    got: Vec<Received>,
    /// answers for the next deliveries, in order; then `always`
    next: VecDeque<u16>,
    always: Option<u16>,
}

#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Inner>>);

impl Receiver {
    /// Serves on 127.0.0.1; the base URL (`http://127.0.0.1:PORT`).
    pub async fn start(&self) -> String {
        let app = Router::new()
            .route("/{*path}", post(receive))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }

    pub fn got(&self) -> Vec<Received> {
        self.0.lock().unwrap().got.clone()
    }

    /// Deliveries to one path.
    pub fn at(&self, path: &str) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.path == path).collect()
    }

    pub fn answer_next(&self, statuses: &[u16]) {
        self.0.lock().unwrap().next.extend(statuses);
    }

    pub fn answer_always(&self, status: Option<u16>) {
        self.0.lock().unwrap().always = status;
    }
}

async fn receive(
    State(r): State<Receiver>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = r.0.lock().unwrap();
    inner.got.push(Received {
        path: uri.path().to_string(),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: body.to_vec(),
    });
    let status = inner.next.pop_front().or(inner.always).unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}
