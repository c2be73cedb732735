//! What a connection is doing, for its two timeouts: a request header must arrive within
//! `OWP_HTTP_HEADER_TIMEOUT` of its first byte (or of the connection's opening), and a
//! connection with nothing in flight is closed after `OWP_HTTP_IDLE_TIMEOUT`. hyper has one
//! timer for both (from the end of a response to the end of the next header), which would
//! close kept-alive connections of clients polling at the protocol's cadence right as they
//! send their next request; so the phases are tracked here instead: the socket wrapper
//! sees bytes arrive, the service sees requests start, and the response body's guard sees
//! them end (streams included).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http_body::Frame;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Accepted; no byte yet.
    Opened(Instant),
    /// Nothing in flight since then.
    Idle(Instant),
    /// A request's first bytes arrived then; its header is not complete.
    Head(Instant),
    /// This many requests in flight (their responses not fully sent).
    Busy(usize),
}

/// One connection's phase, shared by its socket, its service and its watchdog.
#[derive(Debug)]
pub struct Activity(Mutex<Phase>);

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(Phase::Opened(Instant::now()))))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Phase) -> R) -> R {
        f(&mut self.0.lock().expect("activity lock"))
    }

    fn bytes_arrived(&self) {
        self.with(|p| {
            if matches!(p, Phase::Opened(_) | Phase::Idle(_)) {
                *p = Phase::Head(Instant::now());
            }
        });
    }

    /// A request's header is complete and its handler starts; the guard ends it.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.with(|p| {
            *p = match *p {
                Phase::Busy(n) => Phase::Busy(n + 1),
                _ => Phase::Busy(1),
            }
        });
        InFlight(self.clone())
    }

    /// When the connection must be closed unless something happens first; `None` while a
    /// request is in flight (its own timeouts apply).
    pub fn deadline(&self, header_timeout: Duration, idle_timeout: Duration) -> Option<Instant> {
        self.with(|p| match *p {
            Phase::Opened(t) | Phase::Head(t) => Some(t + header_timeout),
            Phase::Idle(t) => Some(t + idle_timeout),
            Phase::Busy(_) => None,
        })
    }
}

/// A request in flight; dropped when its response is fully sent or abandoned.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.with(|p| {
            *p = match *p {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            }
        });
    }
}

/// A response body that holds its request's `InFlight` until hyper is done with it.
pub struct GuardedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl GuardedBody {
    pub fn new(inner: Body, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl http_body::Body for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The client socket, reporting arriving bytes to the connection's `Activity`.
pub struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
}

impl<T> Watched<T> {
    pub fn new(io: T, activity: Arc<Activity>) -> Self {
        Self { io, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(10);
    const I: Duration = Duration::from_secs(120);

    #[test]
    fn the_header_clock_runs_from_the_first_byte_and_the_idle_clock_between_requests() {
        let a = Activity::new();
        let opened = a.deadline(H, I).unwrap();
        assert!(
            opened <= Instant::now() + H,
            "a silent new connection gets the header timeout"
        );
        a.bytes_arrived();
        assert!(a.deadline(H, I).unwrap() <= Instant::now() + H);
        let first = a.request_started();
        let second = a.request_started();
        assert_eq!(
            a.deadline(H, I),
            None,
            "no clock while a request is in flight"
        );
        drop(first);
        assert_eq!(a.deadline(H, I), None, "one still in flight");
        drop(second);
        let idle = a.deadline(H, I).unwrap();
        assert!(
            idle > Instant::now() + H,
            "idle connections get the longer idle timeout"
        );
        a.bytes_arrived();
        assert!(a.deadline(H, I).unwrap() <= Instant::now() + H);
    }
}
