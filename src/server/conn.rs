//! The life of one client connection: how many a client may hold, how long
//! a connection may sit without a request, and how many requests it may
//! carry.
//!
//! hyper bounds the time to read a request head once it has started, but
//! nothing bounds a connection that sends nothing at all: hyper-util's
//! protocol detection waits for the first bytes without a timer, and an
//! HTTP/2 connection that answers PINGs lives forever. So every connection
//! has a watchdog ([`watch`]):
//!
//! - until its first request arrives, it has `server.header_read_timeout`
//!   from accept (TLS handshake, protocol detection and first request head
//!   included);
//! - afterwards, once no request is in flight (a response body still
//!   streaming counts as in flight), it has `server.idle_timeout`;
//! - after `server.max_requests_per_connection` requests it is closed
//!   gracefully: HTTP/1.1 with `Connection: close` on the last response
//!   (what a client expects, as with nginx's `keepalive_requests`), HTTP/2
//!   with GOAWAY.
//!
//! The watchdog is a timer, not a listener: requests only touch atomics
//! (and wake it once, at the request limit), so it costs nothing per
//! request.
//!
//! A timed-out connection is asked to close gracefully and, if it has not
//! within [`CLOSE_GRACE`], dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

/// How long a connection asked to close (timeout, request limit, shutdown
/// aside) may take before it is dropped.
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The connection limits of `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Until the first request head is complete.
    pub first_request: Duration,
    /// Between requests.
    pub idle: Duration,
    /// Requests one connection may carry (0: no limit).
    pub max_requests: usize,
}

// === impl ConnState ===

/// What the watchdog of one connection knows about it.
#[derive(Debug)]
pub struct ConnState {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicUsize,
    /// Milliseconds after `opened` when the last request finished.
    idle_since: AtomicU64,
    /// Woken once, when an HTTP/2 connection reaches the request limit.
    limit: Notify,
    max_requests: usize,
}

impl ConnState {
    pub fn new(max_requests: usize) -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            limit: Notify::new(),
            max_requests,
        })
    }

    /// A request begins; it ends when the returned guard drops (with the
    /// response body, see [`Tracked`]). `http2` requests past the limit
    /// wake the watchdog (GOAWAY); an HTTP/1.1 connection's last response
    /// says `Connection: close` instead ([`InFlight::is_last`]).
    pub fn begin(self: &Arc<Self>, http2: bool) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let last = self.max_requests > 0 && n >= self.max_requests;
        if last && http2 {
            self.limit.notify_one();
        }
        InFlight {
            conn: self.clone(),
            last,
        }
    }

    /// When the connection times out if nothing happens before: `None`
    /// while a request is in flight.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if self.requests.load(Ordering::SeqCst) == 0 {
            return Some(self.opened + limits.first_request);
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::SeqCst));
        Some(self.opened + since + limits.idle)
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct InFlight {
    conn: Arc<ConnState>,
    last: bool,
}

impl InFlight {
    /// The connection's last request under `server.max_requests_per_connection`.
    pub fn is_last(&self) -> bool {
        self.last
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let s = &self.conn;
        let ms = u64::try_from(s.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        s.idle_since.store(ms, Ordering::SeqCst);
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until
/// hyper has sent it (or dropped it).
#[derive(Debug)]
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Why the watchdog asks a connection to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// No (first) request within the limit.
    Idle,
    /// `server.max_requests_per_connection` reached.
    RequestLimit,
}

/// Resolves when the connection should close: idle past its limit (never
/// while a request is in flight), or an HTTP/2 connection at the request
/// limit (GOAWAY lets its streams finish).
pub async fn watch(state: &ConnState, limits: Limits) -> Close {
    let limit = state.limit.notified();
    tokio::pin!(limit);
    loop {
        // In flight: look again one idle period later.
        let at = state
            .deadline(&limits)
            .unwrap_or_else(|| Instant::now() + limits.idle);
        if Instant::now() >= at {
            return Close::Idle;
        }
        tokio::select! {
            () = tokio::time::sleep_until(at) => {}
            () = &mut limit => return Close::RequestLimit,
        }
    }
}

// === impl ClientLimit ===

/// Connections open per client address (`server.max_connections_per_client`),
/// shared by all workers. IPv6 clients count per /64, the block one host
/// usually holds; peers in `server.trusted_proxies` are not counted (they
/// carry many clients' connections).
#[derive(Debug)]
pub struct ClientLimit {
    max: usize,
    open: Mutex<HashMap<ClientKey, usize>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ClientKey {
    V4(u32),
    V6Prefix(u64),
}

impl ClientKey {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(u32::from(v4)),
                None => ClientKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl ClientLimit {
    /// `max` = 0: no limit.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for one more connection from `ip`, or `None` when the client
    /// already holds `max`. `exempt` peers always get one (not counted).
    pub fn acquire(self: &Arc<Self>, ip: IpAddr, exempt: bool) -> Option<ClientSlot> {
        if self.max == 0 || exempt {
            return Some(ClientSlot(None));
        }
        let key = ClientKey::of(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(ClientSlot(Some((self.clone(), key))))
    }

    fn release(&self, key: ClientKey) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&key);
            }
        }
    }
}

/// One counted connection; released on drop.
#[derive(Debug)]
pub struct ClientSlot(Option<(Arc<ClientLimit>, ClientKey)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((limit, key)) = self.0.take() {
            limit.release(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_by_address_and_ipv6_by_64() {
        let limit = ClientLimit::new(2);
        let a: IpAddr = "203.0.113.7".parse().expect("ip");
        let one = limit.acquire(a, false);
        let two = limit.acquire(a, false);
        assert!(one.is_some() && two.is_some());
        assert!(
            limit.acquire(a, false).is_none(),
            "a third from the same address"
        );
        assert!(limit
            .acquire("203.0.113.8".parse().expect("ip"), false)
            .is_some());
        assert!(
            limit.acquire(a, true).is_some(),
            "trusted proxies are exempt"
        );
        drop(one);
        assert!(
            limit.acquire(a, false).is_some(),
            "a closed connection frees a slot"
        );

        let v6 = |s: &str| s.parse::<IpAddr>().expect("ip");
        let _x = limit.acquire(v6("2001:db8:1:2::1"), false);
        let _y = limit.acquire(v6("2001:db8:1:2::ffff"), false);
        assert!(limit.acquire(v6("2001:db8:1:2:aaaa::1"), false).is_none());
        assert!(limit.acquire(v6("2001:db8:1:3::1"), false).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_requests_times_out_and_one_in_use_does_not() {
        let limits = Limits {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_requests: 3,
        };
        let state = ConnState::new(limits.max_requests);
        assert_eq!(watch(&state, limits).await, Close::Idle);
        assert!(state.opened.elapsed() >= limits.first_request);

        let state = ConnState::new(limits.max_requests);
        let request = state.begin(true);
        let watching = watch(&state, limits);
        tokio::pin!(watching);
        // A request in flight: no timeout however long it takes.
        assert!(
            tokio::time::timeout(Duration::from_secs(600), &mut watching)
                .await
                .is_err()
        );
        drop(request);
        let started = Instant::now();
        assert_eq!(watching.await, Close::Idle);
        assert!(started.elapsed() >= limits.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_limit_closes_the_connection() {
        let limits = Limits {
            first_request: Duration::from_secs(10),
            idle: Duration::from_secs(60),
            max_requests: 2,
        };
        let state = ConnState::new(limits.max_requests);
        drop(state.begin(true));
        let _second = state.begin(true);
        assert_eq!(watch(&state, limits).await, Close::RequestLimit);
    }
}
