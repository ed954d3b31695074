//! Forwarding to the upstream: HTTP/1.1 connections driven by the request's
//! own task ([`pool`]), or hyper-util's pooled client for HTTP/2; bodies
//! streamed both ways, `Upgrade` exchanges (WebSocket) tunnelled once the
//! upstream answers 101.

pub mod assertion;
pub mod connect;
pub mod forwarded;
pub mod headers;
pub mod host;
pub mod path;
pub mod pool;
pub mod settings;
pub mod upstreams;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use crate::proxy::path::Target;
use crate::Body;
pub use pool::UpstreamBody;
use settings::UpstreamConfig;

/// Upgraded connections (WebSockets) open now. Once upgraded they leave
/// hyper's connection tracking, so shutdown waits for them here.
static TUNNELS: AtomicUsize = AtomicUsize::new(0);
static TUNNEL_CLOSED: Notify = Notify::const_new();

/// One open tunnel; closing it (drop) wakes a waiting shutdown.
struct Tunnel;

impl Tunnel {
    fn open() -> Self {
        TUNNELS.fetch_add(1, Ordering::SeqCst);
        Tunnel
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        TUNNELS.fetch_sub(1, Ordering::SeqCst);
        TUNNEL_CLOSED.notify_waiters();
    }
}

/// Resolves once no upgraded connection is open.
pub async fn tunnels_closed() {
    loop {
        let closed = TUNNEL_CLOSED.notified();
        if TUNNELS.load(Ordering::SeqCst) == 0 {
            return;
        }
        closed.await;
    }
}

/// Most a pooled upstream connection buffers while reading a response.
pub const UPSTREAM_READ_BUFFER: usize = 64 * 1024;

type UpstreamClient = Client<connect::Connector, pool::Outgoing>;

/// How requests reach the upstream.
#[derive(Debug)]
enum Leg {
    /// HTTP/1.1 connections the request's task drives, kept per worker.
    Http1(pool::Pool),
    /// HTTP/2 (`upstream.protocol`): one hyper-util client per worker
    /// thread, whose connection tasks run on that worker, so proxying never
    /// hands a request or a response across threads.
    Http2 {
        clients: thread_local::ThreadLocal<UpstreamClient>,
        connector: connect::Connector,
    },
}

/// The upstream service.
#[derive(Debug)]
pub struct Upstream {
    leg: Leg,
    scheme: Scheme,
    authority: Authority,
    /// Path prefix of `upstream.url` without a trailing slash ("" for none).
    prefix: String,
    timeout: Duration,
    pass_host_header: bool,
    /// `upstream.max_in_flight`: permits for requests awaiting an answer.
    limit: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    queue_timeout: Duration,
    /// HTTP/2 to the upstream (`upstream.protocol`).
    http2: bool,
}

/// Why an upstream exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Http1(#[from] pool::ExchangeError),
    #[error(transparent)]
    Http2(#[from] hyper_util::client::legacy::Error),
}

impl ExchangeError {
    /// No connection could be made.
    pub fn is_connect(&self) -> bool {
        match self {
            ExchangeError::Http1(e) => matches!(e, pool::ExchangeError::Connect(_)),
            ExchangeError::Http2(e) => e.is_connect(),
        }
    }
}

/// Why forwarding failed, by where the fault lies (the request as judged,
/// or the upstream). `pages` turns it into the response.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The judged target does not form an upstream URI (with the
    /// configured path prefix).
    #[error("the request target cannot be forwarded")]
    BadTarget,
    /// No response head within `upstream.timeout`.
    #[error("the upstream did not answer in time")]
    Timeout,
    /// Connecting to or exchanging with the upstream failed.
    #[error("the upstream request failed: {0}")]
    Upstream(#[source] ExchangeError),
    /// `upstream.max_in_flight` requests were already waiting for the
    /// upstream, and no slot freed within `upstream.queue_timeout`.
    #[error("too many requests are waiting for the upstream")]
    Busy,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("upstream URL has no host")]
    NoHost,
    #[error("invalid upstream URL: {0}")]
    Invalid(#[from] http::uri::InvalidUri),
    #[error("upstream TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("upstream TLS: {0}")]
    TlsFiles(String),
}

/// TLS to the upstream: the system's roots, or `upstream.ca_file` alone;
/// a client certificate for mTLS when configured. ALPN offers HTTP/1.1
/// (WebSocket upgrades keep working) or, with `upstream.protocol =
/// "http2"`, h2 alone.
fn tls_config(config: &UpstreamConfig) -> Result<rustls::ClientConfig, UpstreamError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?;
    let builder = match &config.ca_file {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| UpstreamError::TlsFiles(e.to_string()))?;
                roots.add(cert)?;
            }
            builder.with_root_certificates(roots)
        }
        // A plain-http upstream never handshakes: don't touch the system's
        // certificate store for it (minimal images may have none).
        None if config.url.scheme() != "https" => {
            builder.with_root_certificates(rustls::RootCertStore::empty())
        }
        None => builder.with_platform_verifier()?,
    };
    // ALPN (http/1.1) is set by the connector builder.
    let cfg = match &config.client_cert {
        Some((cert_pem, key_pem)) => {
            let certs = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| UpstreamError::TlsFiles(e.to_string()))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem.expose())
                .map_err(|e| UpstreamError::TlsFiles(e.to_string()))?;
            builder.with_client_auth_cert(certs, key)?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(cfg)
}

/// What the upstream is asked for: `prefix` (`upstream.url`'s path, no
/// trailing slash) followed by the judged target byte for byte.
pub fn upstream_path(prefix: &str, target: &Target) -> Option<PathAndQuery> {
    if prefix.is_empty() {
        return Some(target.path_and_query().clone());
    }
    format!("{prefix}{}", target.as_str()).parse().ok()
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Self, UpstreamError> {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(config.connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(config)?)
            .https_or_http();
        // ALPN offers the one protocol the client speaks.
        let connector = if config.http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        let url = &config.url;
        // `unix:///run/app.sock`: every connection to that socket, requests
        // for `localhost` (the Host header, unless the client's is passed).
        let (connector, authority, prefix) = if url.scheme() == "unix" {
            let decoded = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
            let socket = std::path::Path::new(decoded.as_ref());
            (
                connect::Connector::Unix(socket.into()),
                Authority::from_static("localhost"),
                String::new(),
            )
        } else {
            let host = url.host_str().ok_or(UpstreamError::NoHost)?;
            let authority: Authority = match url.port() {
                Some(p) => format!("{host}:{p}").parse()?,
                None => host.parse()?,
            };
            let prefix = url.path().trim_end_matches('/').to_string();
            (connect::Connector::Net(connector), authority, prefix)
        };
        let scheme = if url.scheme() == "https" {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        };
        let leg = if config.http2 {
            Leg::Http2 {
                clients: thread_local::ThreadLocal::new(),
                connector,
            }
        } else {
            let dial = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query("/")
                .build()
                .map_err(|_| UpstreamError::NoHost)?;
            Leg::Http1(pool::Pool::new(connector, dial, UPSTREAM_READ_BUFFER))
        };
        Ok(Self {
            leg,
            scheme,
            authority,
            prefix,
            timeout: config.timeout,
            pass_host_header: config.pass_host_header,
            limit: config
                .max_in_flight
                .map(|n| std::sync::Arc::new(tokio::sync::Semaphore::new(n))),
            queue_timeout: config.queue_timeout,
            http2: config.http2,
        })
    }

    /// This worker's pooled HTTP/2 client.
    fn client<'a>(
        clients: &'a thread_local::ThreadLocal<UpstreamClient>,
        connector: &connect::Connector,
    ) -> &'a UpstreamClient {
        clients.get_or(|| {
            Client::builder(TokioExecutor::new())
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .pool_idle_timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(1024)
                // Each pooled connection's read buffer grows with the bodies
                // it carries (hyper's default cap is ~400 KiB); capped,
                // streaming large bodies through many connections keeps
                // memory flat.
                .http1_max_buf_size(UPSTREAM_READ_BUFFER)
                // h2c with prior knowledge, or h2 as ALPN agreed.
                .http2_only(true)
                .build(connector.clone())
        })
    }

    /// One exchange with the upstream, up to the response head.
    async fn exchange(
        &self,
        req: Request<Incoming>,
    ) -> Result<Response<UpstreamBody>, ExchangeError> {
        match &self.leg {
            Leg::Http1(pool) => Ok(pool.send(req).await?),
            Leg::Http2 { clients, connector } => {
                let resp = Self::client(clients, connector)
                    .request(req.map(pool::Outgoing::Client))
                    .await?;
                Ok(resp.map(UpstreamBody::from))
            }
        }
    }

    /// The upstream URI for a judged target: see [`upstream_path`]. Origin
    /// form on an HTTP/1.1 connection; HTTP/2 takes the scheme and
    /// authority too (`:scheme`, `:authority`).
    pub fn uri(&self, target: &Target) -> Result<Uri, ForwardError> {
        let path = upstream_path(&self.prefix, target).ok_or(ForwardError::BadTarget)?;
        if !self.http2 {
            return Ok(Uri::from(path));
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|_| ForwardError::BadTarget)
    }

    /// Sends a prepared request upstream to `target`, the path every
    /// decision judged (the client's own URI is never read here). The
    /// timeout covers the response head; the body then streams for as long
    /// as it takes.
    /// A slot under `upstream.max_in_flight`, waiting at most
    /// `upstream.queue_timeout` (first come, first served) for one to free.
    async fn admit(&self) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, ForwardError> {
        let Some(limit) = &self.limit else {
            return Ok(None);
        };
        if let Ok(p) = limit.clone().try_acquire_owned() {
            return Ok(Some(p));
        }
        match tokio::time::timeout(self.queue_timeout, limit.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(Some(p)),
            _ => {
                crate::telemetry::metrics::metrics().upstream_busy.inc();
                Err(ForwardError::Busy)
            }
        }
    }

    /// The upstream exchange in a span of its own (tracing on), which the
    /// upstream receives as its parent in `traceparent`.
    async fn traced(
        &self,
        mut req: Request<Incoming>,
    ) -> Result<Result<Response<UpstreamBody>, ExchangeError>, tokio::time::error::Elapsed> {
        use tracing::Instrument;
        let span = tracing::info_span!(
            target: "tollgate::trace",
            "upstream",
            otel.kind = "client",
            http.request.method = %req.method(),
            server.address = %self.authority,
            http.response.status_code = tracing::field::Empty,
        );
        crate::telemetry::trace::inject(&span, req.headers_mut());
        let answer = tokio::time::timeout(self.timeout, self.exchange(req))
            .instrument(span.clone())
            .await;
        if let Ok(Ok(resp)) = &answer {
            span.record("http.response.status_code", resp.status().as_u16());
        }
        answer
    }

    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        target: &Target,
        upgrade: bool,
    ) -> Result<Response<Body>, ForwardError> {
        // HTTP/2 clients send `:authority` instead of Host; HTTP/1.1
        // upstreams need a Host header.
        if !req.headers().contains_key(http::header::HOST) || !self.pass_host_header {
            let host = if self.pass_host_header {
                req.uri().authority().map(|a| a.as_str().to_string())
            } else {
                None
            }
            .unwrap_or_else(|| self.authority.as_str().to_string());
            if let Ok(v) = http::HeaderValue::from_str(&host) {
                req.headers_mut().insert(http::header::HOST, v);
            }
        }
        *req.uri_mut() = self.uri(target)?;
        *req.version_mut() = if self.http2 {
            // RFC 9113 §8.3.1: `:authority` (the upstream's, which the
            // pool dials) and a different `Host` must not both be sent;
            // the client's host still travels in `X-Forwarded-Host`.
            req.headers_mut().remove(http::header::HOST);
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        // Held until the response head arrives: a streaming body after it
        // no longer waits on the upstream's work.
        let _slot = self.admit().await?;

        let started = std::time::Instant::now();
        let answer = if crate::telemetry::trace::on() {
            self.traced(req).await
        } else {
            tokio::time::timeout(self.timeout, self.exchange(req)).await
        };
        crate::telemetry::metrics::metrics()
            .upstream_duration
            .observe(started.elapsed().as_secs_f64());
        let mut resp = match answer {
            Err(_) => return Err(ForwardError::Timeout),
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, connect = e.is_connect(), "upstream request failed");
                return Err(ForwardError::Upstream(e));
            }
            Ok(Ok(r)) => r,
        };

        let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            if let Some(client_upgrade) = client_upgrade {
                let upstream_upgrade = hyper::upgrade::on(&mut resp);
                let tunnel = Tunnel::open();
                tokio::spawn(async move {
                    let _tunnel = tunnel;
                    match tokio::try_join!(client_upgrade, upstream_upgrade) {
                        Ok((client, upstream)) => {
                            let mut client = TokioIo::new(client);
                            let mut upstream = TokioIo::new(upstream);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                        }
                        Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                    }
                });
            }
        }
        headers::strip_hop_by_hop(resp.headers_mut(), switching);
        Ok(resp.map(Either::Left))
    }
}
