//! HTTP/1.1 to the upstream without a connection task.
//!
//! A hyper-util pooled client runs each upstream connection as a task of
//! its own: every request is handed to that task through a channel, and the
//! response head and each body chunk come back through others, each hop a
//! wake-up of another task. Here the request's own task drives the upstream
//! connection: while it waits for the response head, and then from the
//! response body, which polls the connection before each chunk. Client
//! connection, request and upstream connection make progress in one task.
//!
//! Connections are kept per worker thread (workers never share a task),
//! last in first out so the warmest is reused, and taken back only when the
//! exchange ended cleanly: the response body read to its end, the request
//! body sent, and hyper ready for the next request. A response that comes
//! before the request body is all sent (an early 413, a streaming echo)
//! hands its connection to a task of its own, as hyper-util would: the
//! upload then goes on whether or not the client reads the response yet.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper::body::{Body, Frame, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};

use super::connect::{Connector, Stream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a body's `poll_frame` answers.
type Frames = Poll<Option<Result<Frame<Bytes>, hyper::Error>>>;

/// What goes upstream: the client's body (watched until it is all sent,
/// when there is one), or none (a request sent again).
pub enum Outgoing {
    Client(Incoming),
    Watched {
        body: Incoming,
        sent: Arc<AtomicBool>,
    },
    Empty,
}

impl Body for Outgoing {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Frames {
        match self.get_mut() {
            Outgoing::Client(body) => Pin::new(body).poll_frame(cx),
            Outgoing::Watched { body, sent } => {
                let frame = Pin::new(&mut *body).poll_frame(cx);
                if matches!(frame, Poll::Ready(None)) || body.is_end_stream() {
                    sent.store(true, Ordering::Release);
                }
                frame
            }
            Outgoing::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Outgoing::Client(body) | Outgoing::Watched { body, .. } => body.is_end_stream(),
            Outgoing::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Outgoing::Client(body) | Outgoing::Watched { body, .. } => body.size_hint(),
            Outgoing::Empty => SizeHint::with_exact(0),
        }
    }
}

/// The connection half of a hyper HTTP/1 client connection, with upgrades
/// (its type cannot be named, hence the box: one per connection).
type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// How long an unused connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often unused connections are looked at: closed when too old, or
/// when the upstream closed them (else they would wait in CLOSE_WAIT).
const REAP_EVERY: Duration = Duration::from_secs(5);
/// Most unused connections kept per worker thread.
const MAX_IDLE: usize = 1024;
/// A connection idle this long may be being closed by the upstream's own
/// idle timeout as a request goes out; an idempotent request without a
/// body sent on one is kept, to go again on a new connection should the
/// upstream close it unanswered (RFC 9110 §9.2.2).
const STALE_AFTER: Duration = Duration::from_secs(1);

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] BoxError),
    #[error("{0}")]
    Http(#[from] hyper::Error),
}

/// One upstream connection, in use or idle.
struct Conn {
    sender: SendRequest<Outgoing>,
    driver: Driver,
    /// The driver has finished: the connection is closed.
    done: bool,
}

impl Conn {
    /// Lets the connection read and write what it can now.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if self.done {
            return;
        }
        if let Poll::Ready(result) = self.driver.as_mut().poll(cx) {
            self.done = true;
            if let Err(e) = result {
                tracing::debug!(error = %e, "upstream connection closed");
            }
        }
    }

    /// Fit for another request: open, idle, and hyper wanting one.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx);
        !self.done && self.sender.is_ready()
    }
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// One worker thread's unused connections, oldest first.
#[derive(Default)]
struct Shelf {
    idle: Mutex<VecDeque<Idle>>,
    /// A task is closing connections unused for `IDLE_TIMEOUT`.
    reaping: AtomicBool,
}

impl Shelf {
    /// The most recently used connection still fit for a request, and how
    /// long it was idle.
    fn take(&self, cx: &mut Context<'_>) -> Option<(Conn, Duration)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(mut entry) = idle.pop_back() {
            let waited = entry.since.elapsed();
            if waited < IDLE_TIMEOUT && entry.conn.reusable(cx) {
                return Some((entry.conn, waited));
            }
        }
        None
    }

    /// Keeps `conn` for the next request, if a runtime is there to close
    /// it once unused for long (none is while a runtime shuts down).
    fn put(self: &Arc<Self>, conn: Conn) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() >= MAX_IDLE {
            idle.pop_front();
        }
        idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
        drop(idle);
        if !self.reaping.swap(true, Ordering::AcqRel) {
            runtime.spawn(reap(Arc::downgrade(self)));
        }
    }
}

/// Closes connections unused for `IDLE_TIMEOUT` and those the upstream
/// closed (each is polled once, with nothing to wake), and stops when none
/// is left (the next one kept starts it again).
async fn reap(shelf: Weak<Shelf>) {
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let Some(shelf) = shelf.upgrade() else {
            return;
        };
        let mut idle = shelf.idle.lock().unwrap_or_else(|e| e.into_inner());
        let mut cx = Context::from_waker(Waker::noop());
        idle.retain_mut(|i| i.since.elapsed() < IDLE_TIMEOUT && i.conn.reusable(&mut cx));
        if idle.is_empty() {
            shelf.reaping.store(false, Ordering::Release);
            return;
        }
    }
}

/// HTTP/1.1 connections to one upstream, kept per worker thread.
pub struct Pool {
    shelves: thread_local::ThreadLocal<Arc<Shelf>>,
    connector: Connector,
    /// What the connector dials (scheme and authority).
    dial: Uri,
    builder: http1::Builder,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("dial", &self.dial).finish()
    }
}

impl Pool {
    /// `max_buf`: most a connection buffers while reading a response.
    pub fn new(connector: Connector, dial: Uri, max_buf: usize) -> Self {
        let mut builder = http1::Builder::new();
        builder.max_buf_size(max_buf);
        Self {
            shelves: thread_local::ThreadLocal::new(),
            connector,
            dial,
            builder,
        }
    }

    fn shelf(&self) -> &Arc<Shelf> {
        self.shelves.get_or(Arc::default)
    }

    async fn connect(&self) -> Result<Conn, ExchangeError> {
        use tower_service::Service;
        let mut connector = self.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(ExchangeError::Connect)?;
        let io = connector
            .call(self.dial.clone())
            .await
            .map_err(ExchangeError::Connect)?;
        let (sender, conn) = self.builder.handshake::<Stream, Outgoing>(io).await?;
        Ok(Conn {
            sender,
            driver: Box::pin(conn.with_upgrades()),
            done: false,
        })
    }

    /// Sends `req` (origin-form target, `Host` set) on a kept connection or
    /// a new one. A request hyper did not begin to write goes again on
    /// another connection. An idempotent one without a body that a
    /// connection kept for a while closed unanswered (see `STALE_AFTER`)
    /// goes again once, on a new connection. A new connection's failure is
    /// final.
    pub async fn send(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, ExchangeError> {
        let (mut req, uploaded) = watched(req);
        let mut replayed = false;
        loop {
            let kept = if replayed {
                None
            } else {
                poll_fn(|cx| Poll::Ready(self.shelf().take(cx))).await
            };
            let reused = kept.is_some();
            let (mut conn, idle) = match kept {
                Some(k) => k,
                None => (self.connect().await?, Duration::ZERO),
            };
            let again = (idle >= STALE_AFTER).then(|| replay(&req)).flatten();
            let mut sent = std::pin::pin!(conn.sender.try_send_request(req));
            let answer = poll_fn(|cx| {
                conn.drive(cx);
                sent.as_mut().poll(cx)
            })
            .await;
            let mut e = match answer {
                Ok(resp) => return Ok(self.respond(resp, conn, uploaded.as_deref())),
                Err(e) => e,
            };
            let unanswered = e.error().is_incomplete_message() || e.error().is_canceled();
            req = match (e.take_message(), again) {
                (Some(r), _) if reused => r,
                (None, Some(r)) if unanswered => {
                    replayed = true;
                    r
                }
                _ => return Err(e.into_error().into()),
            };
            tracing::debug!("sending the request again on another upstream connection");
        }
    }

    /// The response, its body driving the connection. The connection runs
    /// on as a task of its own, not to be kept, after `101 Switching
    /// Protocols` (the task hands the upgraded stream over) and while the
    /// request body is still being sent.
    fn respond(
        &self,
        resp: Response<Incoming>,
        conn: Conn,
        uploaded: Option<&AtomicBool>,
    ) -> Response<UpstreamBody> {
        let uploading = uploaded.is_some_and(|s| !s.load(Ordering::Acquire));
        let lease = if resp.status() == StatusCode::SWITCHING_PROTOCOLS || uploading {
            if !conn.done {
                tokio::spawn(conn.driver);
            }
            None
        } else {
            Some(Lease {
                conn,
                shelf: self.shelf().clone(),
            })
        };
        resp.map(|inner| UpstreamBody {
            inner,
            lease,
            ended: false,
        })
    }
}

/// The request with its body watched until all of it is sent, when it
/// has one, and the flag that says so.
fn watched(req: Request<Incoming>) -> (Request<Outgoing>, Option<Arc<AtomicBool>>) {
    if req.body().is_end_stream() {
        return (req.map(Outgoing::Client), None);
    }
    let sent = Arc::new(AtomicBool::new(false));
    let flag = sent.clone();
    (req.map(|body| Outgoing::Watched { body, sent }), Some(flag))
}

/// A copy of an idempotent request without a body, to send again.
fn replay(req: &Request<Outgoing>) -> Option<Request<Outgoing>> {
    if !req.method().is_idempotent() || !req.body().is_end_stream() {
        return None;
    }
    let mut copy = Request::new(Outgoing::Empty);
    *copy.method_mut() = req.method().clone();
    *copy.uri_mut() = req.uri().clone();
    *copy.version_mut() = req.version();
    *copy.headers_mut() = req.headers().clone();
    Some(copy)
}

/// A connection lent to one exchange; back to its shelf if it ends
/// cleanly.
struct Lease {
    conn: Conn,
    shelf: Arc<Shelf>,
}

/// An upstream response body. With a pooled HTTP/1.1 connection it drives
/// that connection as it is read.
pub struct UpstreamBody {
    inner: Incoming,
    lease: Option<Lease>,
    ended: bool,
}

impl From<Incoming> for UpstreamBody {
    /// A body whose connection runs elsewhere (HTTP/2).
    fn from(inner: Incoming) -> Self {
        Self {
            inner,
            lease: None,
            ended: false,
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Frames {
        let this = self.get_mut();
        if let Some(lease) = &mut this.lease {
            lease.conn.drive(cx);
        }
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    /// A body read to its end gives its connection back, once hyper has
    /// seen the exchange through (polled here once, with nothing to wake:
    /// the next request polls it again). A connection still busy then is
    /// still sending the request (the last of an upload not yet written
    /// out): a task of its own finishes that, then closes it. A body not
    /// read to its end closes its connection.
    fn drop(&mut self) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if !(self.ended || self.inner.is_end_stream()) {
            return;
        }
        let mut cx = Context::from_waker(Waker::noop());
        if lease.conn.reusable(&mut cx) {
            lease.shelf.put(lease.conn);
        } else if !lease.conn.done {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(lease.conn.driver);
            }
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("pooled", &self.lease.is_some())
            .finish()
    }
}
