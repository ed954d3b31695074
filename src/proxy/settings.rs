//! `[upstream]` and `[headers]` as the loader validated them.

use std::time::Duration;

use url::Url;

use crate::proxy::assertion::AssertionConfig;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: Url,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub pass_host_header: bool,
    /// Rules and public routes match paths ignoring ASCII case.
    pub case_insensitive_paths: bool,
    pub pass_user_headers: bool,
    /// `X-Forwarded-Provider` with the user headers: on when several
    /// providers are configured, since a subject is unique only within
    /// its provider.
    pub pass_provider: bool,
    pub pass_access_token: bool,
    pub pass_authorization_header: bool,
    pub headers: IdentityHeaders,
    /// Extra headers from claims, in config order.
    pub claim_headers: Vec<(http::HeaderName, String)>,
    /// Send a signed identity assertion (`X-Tollgate-Assertion`).
    pub assertion: Option<AssertionConfig>,
    /// PEM roots for an https upstream; `None`: the system's.
    pub ca_file: Option<Vec<u8>>,
    /// PEM client certificate chain and key for mTLS to the upstream.
    pub client_cert: Option<(Vec<u8>, Secret)>,
    /// Most requests waiting for the upstream's answer at once (`None`: no
    /// limit), and how long one more may queue for a slot before it is
    /// answered 503.
    pub max_in_flight: Option<usize>,
    pub queue_timeout: Duration,
    /// Speak HTTP/2 to the upstream: h2c with prior knowledge over
    /// `http://`, ALPN `h2` over `https://` (`upstream.protocol`).
    pub http2: bool,
}

/// Where requests for a host and path prefix go: one `[[upstreams]]`
/// entry, or the single `[upstream]` for every host.
#[derive(Debug, Clone)]
pub struct UpstreamRoute {
    /// A host pattern (`app.example.com`, `*.example.com`); `None`: any
    /// host (`[upstream]`, or an entry's `host = "*"`).
    pub host: Option<String>,
    /// The path prefix, without a trailing slash (`""` for `/`).
    pub path_prefix: String,
    pub upstream: UpstreamConfig,
}

/// Names of the identity headers sent upstream.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: http::HeaderName,
    pub email: http::HeaderName,
    pub preferred_username: http::HeaderName,
    pub groups: http::HeaderName,
    pub access_token: http::HeaderName,
}
