//! The accept loop: HTTP/1.1 connections served by hyper with the limits axum's `serve`
//! does not offer: a header read timeout and an idle keep-alive timeout (each connection's
//! watchdog, see `activity`), a cap on open connections, and a graceful shutdown that
//! closes idle connections at once and lets in-flight requests finish.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::activity::{Activity, GuardedBody, Watched};

/// Connection limits of one listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting, closes
/// idle connections and waits for in-flight requests (the caller bounds that wait).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's own header timer also runs while a kept-alive connection idles; the
    // connection's watchdog below keeps the two apart
    http.header_read_timeout(None).keep_alive(true);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // past the cap, connections wait in the kernel's listen backlog
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors, or the peer reset before accept: not fatal
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let activity = Activity::new();
        let seen = activity.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = seen.request_started();
            let answer = router.clone().oneshot(req.map(axum::body::Body::new));
            async move {
                let resp = answer.await?;
                Ok::<_, std::convert::Infallible>(resp.map(|b| GuardedBody::new(b, in_flight)))
            }
        });
        let io = TokioIo::new(Watched::new(stream, activity.clone()));
        let conn = graceful.watch(http.serve_connection(io, service));
        crate::metrics::http_connections(limits.max_connections - slots.available_permits());
        let slots_now = slots.clone();
        tokio::spawn(async move {
            tokio::pin!(conn);
            loop {
                // re-checked at least every header timeout: a busy connection has no deadline
                let deadline = activity
                    .deadline(limits.header_timeout, limits.idle_timeout)
                    .unwrap_or_else(|| std::time::Instant::now() + limits.header_timeout);
                tokio::select! {
                    // the connection first: bytes that arrived while this task waited for the
                    // CPU are read (and move the clock) before the deadline is judged, so a
                    // starved replica does not cut a request it had already received
                    biased;
                    ended = &mut conn => {
                        // a client that hangs up is normal; nothing to report above debug
                        if let Err(e) = ended {
                            tracing::debug!(error = %e, %peer, "connection ended with an error");
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(deadline.into()) => {
                        let due = activity.deadline(limits.header_timeout, limits.idle_timeout);
                        if due.is_some_and(|d| d <= std::time::Instant::now()) {
                            tracing::debug!(%peer, "closing a connection: header too slow, or idle");
                            break;
                        }
                    }
                }
            }
            drop(slot);
            crate::metrics::http_connections(
                limits.max_connections - slots_now.available_permits(),
            );
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
