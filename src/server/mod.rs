//! The listener: accepts connections (bounded by `server.max_connections`),
//! serves HTTP/1.1 and HTTP/2 with upgrades, and drains gracefully.
//!
//! Thread per core: one single-threaded runtime per worker thread, each
//! accepting from its own handle on the one listening socket and serving its
//! connections start to finish, with its own upstream connection pool (see
//! [`crate::proxy::Upstream`]). Nothing on the request path crosses threads,
//! so no task is stolen, woken or locked across cores. On two cores, two
//! single-threaded processes served about 1.5 times what one two-thread
//! work-stealing process did (docs/benchmarks.md). Every worker is woken
//! for a new connection and the first to reach `accept` takes it, so a
//! worker busy with requests tends to leave new connections to the others.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub mod conn;
pub mod reload;
pub mod settings;
pub mod tls;

use crate::gateway::App;
use crate::oidc::Provider;

/// Largest request head accepted (HTTP/1.1 read buffer, HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How many worker threads serve requests: the CPUs this process may use
/// (cgroup quotas included, as the standard library reads them).
pub fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A single-threaded runtime for one worker.
pub fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The thread that runs the background work: discovery and key refreshes,
/// configuration and certificate reloads, the metrics listener and the
/// Redis connection it opens (a reconnect that the `redis` crate starts
/// from a request runs on that request's worker). On a runtime of its own,
/// none of it waits behind a worker's requests, and no worker's requests
/// wait behind it. Stopped and joined when dropped.
pub struct Background {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn start() -> std::io::Result<Self> {
        let runtime = worker_runtime()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tollgate-background".into())
            .spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Self {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `task` on the background thread.
    pub fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connection limits shared by every worker.
pub struct Admission {
    /// `server.max_connections`, all workers together.
    connections: Arc<Semaphore>,
    /// `server.max_connections_per_client`.
    clients: Arc<conn::ClientLimit>,
}

impl Admission {
    pub fn new(config: &settings::ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            connections: Arc::new(Semaphore::new(config.max_connections)),
            clients: conn::ClientLimit::new(config.max_connections_per_client),
        })
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, fails
/// readiness and waits up to `server.shutdown_grace` for open requests.
/// Every worker runs one of these on its own handle of the listening socket;
/// `admission` is shared by all, so the connection limits hold in total.
pub async fn serve(
    slot: Arc<reload::AppSlot>,
    listener: TcpListener,
    admission: Arc<Admission>,
    tls: Option<Arc<tls::Reloading>>,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(t.server_config()));
    // Listener settings come from the configuration at start.
    let app = slot.get();
    let server = &app.config.server;
    let limits = conn::Limits {
        first_request: server.header_read_timeout,
        idle: server.idle_timeout,
        max_requests: server.max_requests_per_connection,
    };
    let builder = Arc::new(http_builder(server.header_read_timeout));
    // Every connection task holds a sender; when all are gone, all closed.
    let (open_tx, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let (draining_tx, draining) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = admit(&admission, &slot, peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let task = Connection {
            slot: slot.clone(),
            peer,
            limits,
            builder: builder.clone(),
            acceptor: acceptor.clone(),
            draining: draining.clone(),
        };
        let open = open_tx.clone();
        tokio::spawn(async move {
            let metrics = crate::telemetry::metrics::metrics();
            metrics.open_connections.inc();
            task.run(stream).await;
            metrics.open_connections.dec();
            drop((admitted, open));
        });
    }

    drop(listener);
    drop(open_tx);
    let grace = app.config.server.shutdown_grace;
    tracing::info!(
        grace_s = grace.as_secs_f64(),
        "shutting down: draining open connections"
    );
    let _ = draining_tx.send(true);
    tokio::select! {
        () = async {
            let _ = all_closed.recv().await;
            // WebSockets and other upgraded connections get the same grace.
            crate::proxy::tunnels_closed().await;
        } => tracing::info!("all connections closed"),
        () = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
}

/// hyper's settings for client connections.
fn http_builder(header_read_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256)
        .max_pending_accept_reset_streams(32)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    builder
}

/// The slots a new connection takes, or `None` (logged and counted) when
/// a limit is reached and the connection is to be closed at once.
fn admit(
    admission: &Admission,
    slot: &reload::AppSlot,
    peer: SocketAddr,
) -> Option<(tokio::sync::OwnedSemaphorePermit, conn::ClientSlot)> {
    let refused = |reason: &'static str| {
        crate::telemetry::metrics::metrics()
            .connections_refused
            .get_or_create(&crate::telemetry::metrics::ReasonLabels { reason })
            .inc();
    };
    let Ok(permit) = admission.connections.clone().try_acquire_owned() else {
        refused("max_connections");
        tracing::warn!(%peer, "connection limit reached; closing new connection");
        return None;
    };
    let trusted = slot.get().trusted.trusts(peer.ip());
    let Some(client) = admission.clients.acquire(peer.ip(), trusted) else {
        refused("max_connections_per_client");
        tracing::warn!(%peer, "per-client connection limit reached; closing new connection");
        return None;
    };
    Some((permit, client))
}

/// One accepted connection and what serving it needs.
struct Connection {
    slot: Arc<reload::AppSlot>,
    peer: SocketAddr,
    limits: conn::Limits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    draining: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    async fn run(self, stream: tokio::net::TcpStream) {
        let state = conn::ConnState::new(self.limits.max_requests);
        let Some(acceptor) = self.acceptor.clone() else {
            return self.serve(stream, &state).await;
        };
        // The handshake counts against the time to the first request.
        match tokio::time::timeout(self.limits.first_request, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => self.serve(tls, &state).await,
            Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
        }
    }

    async fn serve<S>(&self, stream: S, state: &Arc<conn::ConnState>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (slot, peer, counted) = (self.slot.clone(), self.peer, state.clone());
        // Each request runs on the application current when it arrives.
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let app = slot.get();
            let http2 = req.version() == http::Version::HTTP_2;
            let in_flight = counted.begin(http2);
            async move {
                let mut resp = app.handle(req, peer).await;
                let upgrading = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
                if in_flight.is_last() && !http2 && !upgrading {
                    // The keep-alive limit, said the way HTTP/1.1 clients
                    // expect (RFC 9112 §9.6): this response is the last.
                    // (A 101 hands the connection over instead, and its
                    // `Connection: upgrade` must stand.)
                    resp.headers_mut().insert(
                        http::header::CONNECTION,
                        http::HeaderValue::from_static("close"),
                    );
                }
                Ok::<_, Infallible>(resp.map(|b| conn::Tracked::new(b, in_flight)))
            }
        });
        let served = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(stream), svc);
        tokio::pin!(served);
        let mut draining = self.draining.clone();
        // `None`: the server is shutting down.
        let why = tokio::select! {
            result = &mut served => return log_end(peer, result),
            close = conn::watch(state, self.limits) => Some(close),
            _ = draining.wait_for(|d| *d) => None,
        };
        tracing::debug!(%peer, reason = ?why, "closing connection");
        served.as_mut().graceful_shutdown();
        let result = match why {
            // At shutdown the server-wide grace period bounds the wait.
            None => served.await,
            Some(_) => match tokio::time::timeout(conn::CLOSE_GRACE, served).await {
                Ok(result) => result,
                Err(_) => return,
            },
        };
        log_end(peer, result);
    }
}

fn log_end(peer: SocketAddr, result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Serves `GET /metrics` (Prometheus text format) on its own listener.
pub async fn serve_metrics(listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                let resp = if req.uri().path() == "/metrics" {
                    let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(
                        crate::telemetry::metrics::metrics().encode(),
                    )));
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        // prometheus-client writes OpenMetrics text (`# EOF` at the end).
                        http::HeaderValue::from_static(
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        ),
                    );
                    r
                } else {
                    let mut r = http::Response::new(http_body_util::Full::new(
                        bytes::Bytes::from_static(b"not found\n"),
                    ));
                    *r.status_mut() = http::StatusCode::NOT_FOUND;
                    r
                };
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Discovers every provider not yet discovered, each retrying with
/// backoff until it answers, then keeps its keys fresh; the service
/// reports not ready until all have been discovered.
pub async fn discover(app: Arc<App>) {
    let mut tasks = tokio::task::JoinSet::new();
    for slot in app.providers.shared().filter(|s| s.current().is_none()) {
        tasks.spawn(discover_one(slot.clone()));
    }
    // Only the slots are held from here on: an application a reload
    // replaces is freed, while its providers' keys stay fresh.
    drop(app);
    // Dropping the set (when this task is aborted) aborts them all.
    while tasks.join_next().await.is_some() {}
}

async fn discover_one(slot: Arc<crate::oidc::registry::Slot>) {
    let id = slot.id().to_string();
    let mut delay = Duration::from_millis(500);
    loop {
        match Provider::discover(&slot.settings, slot.client_keys.clone(), &slot.http).await {
            Ok(p) => {
                tracing::info!(provider = %id, issuer = %slot.settings.issuer, "identity provider discovered");
                slot.set_current(p.clone());
                refresh_keys(&p).await;
                return;
            }
            Err(e) => {
                tracing::warn!(provider = %id, error = %e, retry_in_s = delay.as_secs_f64(), "identity provider discovery failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Connects the Redis session store, retrying with backoff; until then,
/// requests that need a session get 503 and readiness fails.
pub async fn connect_store(app: Arc<App>) {
    let crate::session::store::Backend::Redis(redis) = &app.sessions.backend else {
        return;
    };
    let mut delay = Duration::from_millis(500);
    loop {
        match redis.connect().await {
            Ok(()) => {
                tracing::info!("connected to the Redis session store");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = delay.as_secs_f64(), "cannot connect to the Redis session store");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// How often the provider's key set is fetched again, so a key the
/// provider withdraws stops being trusted.
pub const JWKS_REFRESH: Duration = Duration::from_secs(3600);

async fn refresh_keys(provider: &Provider) {
    if provider.github.is_some() {
        return;
    }
    loop {
        tokio::time::sleep(JWKS_REFRESH).await;
        if let Err(e) = provider.keys.refresh().await {
            tracing::warn!(error = %e, "periodic refresh of provider keys failed; keeping the current ones");
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = term => tracing::info!("SIGTERM received"),
    }
}
