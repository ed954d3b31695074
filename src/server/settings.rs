//! `[server]` as the loader validated it: the listener's settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: Url,
    pub shutdown_grace: Duration,
    /// From accept to a complete first request head; then per request head.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Per client address (IPv6: per /64); 0 = no limit.
    pub max_connections_per_client: usize,
    /// Requests one connection may carry; 0 = no limit.
    pub max_requests_per_connection: usize,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub allowed_redirect_domains: Vec<String>,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsFiles>,
    /// The liveness and readiness probes' paths; `None`: not served (the
    /// path goes to the upstream like any other).
    pub health_path: Option<String>,
    pub ready_path: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}
