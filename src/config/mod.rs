//! Configuration: load (built-in defaults ← TOML file ← `TOLLGATE_*`
//! environment ← `*_file` secrets), validate, and hand the rest of the crate a
//! typed [`Config`] of plain data.
//!
//! Every error names the key and where its value came from (the file, the
//! environment variable, or the built-in default), and all errors are reported
//! at once so a broken config is fixed in one round trip.

mod raw;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use figment::providers::{Format, Toml};
use figment::Figment;
use jsonwebtoken::Algorithm;
use url::Url;

pub use raw::RawConfig;

/// The config file used when neither `--config` nor `TOLLGATE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "tollgate.toml";
/// The path the authorization response comes back to.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "TOLLGATE_";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub provider: ProviderConfig,
    pub session: SessionConfig,
    pub log: LogConfig,
    /// `[authorization]` as written (validated): compiled by the gateway.
    pub authorization: crate::authz::RawAuthorization,
    /// `[routes]` as written (validated): compiled by the gateway.
    pub routes: crate::proxy::path::RawRoutes,
    pub bearer: BearerConfig,
    /// Where Prometheus metrics are served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// Bearer-token access for machine clients.
#[derive(Debug, Clone, Default)]
pub struct BearerConfig {
    /// JWT access tokens must name one of these in `aud`.
    pub audiences: Vec<String>,
    /// Algorithms JWT access tokens may be signed with; never HS*.
    pub algorithms: Vec<Algorithm>,
    /// Opaque tokens are checked at the introspection endpoint.
    pub introspection: bool,
}

impl BearerConfig {
    pub fn enabled(&self) -> bool {
        !self.audiences.is_empty() || self.introspection
    }
}

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
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub url: Url,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub pass_host_header: bool,
    /// Rules and public routes match paths ignoring ASCII case.
    pub case_insensitive_paths: bool,
    pub pass_user_headers: bool,
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
}

pub use crate::proxy::assertion::AssertionConfig;

/// Names of the identity headers sent upstream.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: http::HeaderName,
    pub email: http::HeaderName,
    pub preferred_username: http::HeaderName,
    pub groups: http::HeaderName,
    pub access_token: http::HeaderName,
}

/// How tollgate authenticates itself at the token endpoint (RFC 6749 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with form-urlencoded id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// Public client: no secret, PKCE only.
    None,
}

#[derive(Clone)]
pub struct ProviderConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    pub scopes: Vec<String>,
    pub redirect_url: Url,
    pub post_logout_redirect_url: Url,
    pub pkce: bool,
    pub id_token_algorithms: Vec<Algorithm>,
    pub clock_skew: Duration,
    /// Oldest acceptable ID-token `iat`; `None` when set to zero.
    pub id_token_max_age: Option<Duration>,
    pub trusted_audiences: Vec<String>,
    pub strict_audience: bool,
    pub groups_claim: String,
    pub fetch_userinfo: bool,
    pub timeout: Duration,
    /// PEM bytes of extra trusted roots for the provider (`provider.ca_file`).
    pub ca_file: Option<Vec<u8>>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("scopes", &self.scopes)
            .field("redirect_url", &self.redirect_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Current key material first, then decrypt-only previous keys.
    pub secrets: Vec<Secret>,
    pub cookie_name: String,
    pub lifetime: Duration,
    pub secure: bool,
    pub same_site: cookie::SameSite,
    pub domain: Option<String>,
    pub path: String,
    /// Refresh the access token when it expires within this long.
    pub refresh_before: Duration,
    /// A GET sign-out without proof that it comes from this site gets a
    /// confirmation page instead (`session.confirm_sign_out`).
    pub confirm_sign_out: bool,
    /// Cookie store: how many ended sessions the process remembers.
    pub max_remembered_logouts: usize,
    /// `None`: sessions live in the cookie.
    pub redis: Option<RedisConfig>,
}

impl SessionConfig {
    /// A cookie-store session config with defaults (tests, tools).
    pub fn cookie_store(
        secrets: Vec<Secret>,
        cookie_name: &str,
        lifetime: Duration,
        secure: bool,
    ) -> Self {
        Self {
            secrets,
            cookie_name: cookie_name.to_string(),
            lifetime,
            secure,
            same_site: cookie::SameSite::Lax,
            domain: None,
            path: "/".into(),
            refresh_before: Duration::from_secs(60),
            confirm_sign_out: true,
            max_remembered_logouts: crate::session::revoked::MAX_ENTRIES,
            redis: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMode {
    Standalone,
    Sentinel,
    Cluster,
}

#[derive(Clone)]
pub struct RedisConfig {
    /// The server (standalone); ignored for sentinel and cluster.
    pub url: String,
    pub mode: RedisMode,
    /// Sentinels (sentinel mode) or seed nodes (cluster mode), as URLs.
    pub nodes: Vec<String>,
    pub sentinel_master: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: bool,
    pub key_prefix: String,
    pub timeout: Duration,
}

impl RedisConfig {
    /// How sentinel mode connects to the master it finds.
    pub fn node_connection_info(&self) -> Option<redis::sentinel::SentinelNodeConnectionInfo> {
        let mut info = redis::sentinel::SentinelNodeConnectionInfo::default();
        if self.tls {
            info = info.set_tls_mode(redis::TlsMode::Secure);
        }
        let mut redis_info = redis::RedisConnectionInfo::default();
        if let Some(u) = &self.username {
            redis_info = redis_info.set_username(u.clone());
        }
        if let Some(p) = &self.password {
            redis_info = redis_info.set_password(p.expose_str());
        }
        Some(info.set_redis_connection_info(redis_info))
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("mode", &self.mode)
            .field("nodes", &self.nodes.len())
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub level: String,
    pub json: bool,
}

pub use crate::secret::Secret;

// === errors ===

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub origin: String,
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` ({}): {}", self.key, self.origin, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist (named by {named_by})")]
    FileMissing { path: PathBuf, named_by: String },
    #[error("invalid configuration:\n{}", list(.0))]
    Invalid(Vec<KeyError>),
}

fn list(errors: &[KeyError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// === loading ===

/// Where the config file path came from.
#[derive(Debug, Clone)]
pub enum ConfigPath {
    /// `--config` or `TOLLGATE_CONFIG`: must exist.
    Named(PathBuf, &'static str),
    /// The default `./tollgate.toml`: optional (environment-only configs are fine).
    Default,
}

/// Loads and validates a config. `env` is the environment to read, so tests
/// never touch the process environment.
pub fn load(
    path: &ConfigPath,
    env: &[(String, String)],
) -> Result<(Config, RawConfig), ConfigError> {
    let figment = figment(path, env)?;
    let raw: RawConfig = figment.extract().map_err(|e| from_figment(e, &figment))?;
    let config = validate(&raw, &figment)?;
    Ok((config, raw))
}

/// Loads and validates a config from TOML text (fuzzing, tests): the same
/// rules as [`load`], with no file involved.
pub fn load_str(text: &str, env: &[(String, String)]) -> Result<(Config, RawConfig), ConfigError> {
    let figment = with_env(Figment::new().merge(Toml::string(text)), env);
    let raw: RawConfig = figment.extract().map_err(|e| from_figment(e, &figment))?;
    let config = validate(&raw, &figment)?;
    Ok((config, raw))
}

fn figment(path: &ConfigPath, env: &[(String, String)]) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new();
    let file: Option<&Path> = match path {
        ConfigPath::Named(p, named_by) => {
            if !p.is_file() {
                return Err(ConfigError::FileMissing {
                    path: p.clone(),
                    named_by: (*named_by).to_string(),
                });
            }
            Some(p)
        }
        ConfigPath::Default => {
            let p = Path::new(DEFAULT_CONFIG_PATH);
            p.is_file().then_some(p)
        }
    };
    if let Some(p) = file {
        figment = figment.merge(Toml::file_exact(p));
    }
    Ok(with_env(figment, env))
}

/// Merges the `TOLLGATE_<SECTION>__<KEY>` variables of `env` over `figment`.
fn with_env(mut figment: Figment, env: &[(String, String)]) -> Figment {
    // figment's own `Env` provider reads the process environment; tests must
    // not mutate that, so the environment is passed in and each variable
    // becomes a provider of its own, named after the variable for errors.
    let vars: Vec<(String, String)> = env
        .iter()
        // Only `TOLLGATE_<SECTION>__<KEY>`: every key lives in a section,
        // and Kubernetes injects `TOLLGATE_PORT`, `TOLLGATE_SERVICE_HOST`, …
        // for a Service named tollgate; those are not config.
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k[ENV_PREFIX.len()..].contains("__"))
        .cloned()
        .collect();
    for (k, v) in &vars {
        let key = k[ENV_PREFIX.len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        let value: figment::value::Value = v
            .parse()
            .unwrap_or_else(|_| figment::value::Value::from(v.clone()));
        figment = figment.merge(figment::providers::Serialized::global(&key, value).with_origin(k));
    }
    figment
}

/// Marks a serialized value as coming from an environment variable.
trait WithOrigin: Sized {
    fn with_origin(self, var: &str) -> EnvVarProvider<Self>;
}

impl<T> WithOrigin for figment::providers::Serialized<T> {
    fn with_origin(self, var: &str) -> EnvVarProvider<Self> {
        EnvVarProvider {
            inner: self,
            var: var.to_string(),
        }
    }
}

struct EnvVarProvider<P> {
    inner: P,
    var: String,
}

impl<P: figment::Provider> figment::Provider for EnvVarProvider<P> {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named(format!("environment variable {}", self.var))
    }
    fn data(
        &self,
    ) -> Result<figment::value::Map<figment::Profile, figment::value::Dict>, figment::Error> {
        self.inner.data()
    }
}

/// The process environment, as `load` wants it.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// Largest file the configuration reads (secrets, keys, CA bundles).
const MAX_CONFIG_FILE_BYTES: u64 = 4 << 20;

/// Reads a file named by the configuration, refusing anything larger than
/// [`MAX_CONFIG_FILE_BYTES`] (a path to `/dev/zero` must not hang start-up).
fn read_file(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(std::io::Error::other("larger than 4 MiB"));
    }
    Ok(bytes)
}

/// Where a key's value came from, for error messages.
fn origin(figment: &Figment, key: &str) -> String {
    match figment.find_metadata(key) {
        Some(md) => match &md.source {
            Some(figment::Source::File(p)) => p.display().to_string(),
            _ => md.name.to_string(),
        },
        None => "built-in default".to_string(),
    }
}

fn from_figment(err: figment::Error, figment: &Figment) -> ConfigError {
    let errors = err
        .into_iter()
        .map(|e| {
            let mut path = e.path.clone();
            let message = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => {
                    if path.last() != Some(field) {
                        path.push(field.clone());
                    }
                    let hint = closest(field, expected)
                        .map(|c| format!("; did you mean `{c}`?"))
                        .unwrap_or_default();
                    format!("unknown key{hint}")
                }
                kind => kind.to_string(),
            };
            let key = path.join(".");
            let origin = e
                .metadata
                .as_ref()
                .map(|md| match &md.source {
                    Some(figment::Source::File(p)) => p.display().to_string(),
                    _ => md.name.to_string(),
                })
                .unwrap_or_else(|| origin(figment, &key));
            KeyError {
                key,
                origin,
                message,
            }
        })
        .collect();
    ConfigError::Invalid(errors)
}

fn closest<'a>(field: &str, expected: &'a [&'static str]) -> Option<&'a str> {
    expected
        .iter()
        .map(|c| (strsim::levenshtein(field, c), *c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

// === validation ===

struct Check<'a> {
    figment: &'a Figment,
    errors: Vec<KeyError>,
}

impl Check<'_> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(KeyError {
            key: key.to_string(),
            origin: origin(self.figment, key),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, value: &str) -> Duration {
        match humantime::parse_duration(value) {
            Ok(d) => d,
            Err(e) => {
                self.fail(
                    key,
                    format!("`{value}` is not a duration like \"30s\" or \"12h\": {e}"),
                );
                Duration::ZERO
            }
        }
    }

    fn required<'v>(&mut self, key: &str, value: &'v Option<String>) -> &'v str {
        match value.as_deref().map(str::trim) {
            Some(v) if !v.is_empty() => v,
            _ => {
                self.fail(key, "is required");
                ""
            }
        }
    }

    /// A readable PEM file with at least one certificate.
    fn pem_certs(&mut self, key: &str, path: &str) -> Option<Vec<u8>> {
        use rustls::pki_types::pem::PemObject;
        let pem = match read_file(path) {
            Ok(p) => p,
            Err(e) => {
                self.fail(key, format!("cannot read `{path}`: {e}"));
                return None;
            }
        };
        let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
            .filter(|c| c.is_ok())
            .count();
        if certs == 0 {
            self.fail(key, format!("`{path}` holds no PEM CERTIFICATE"));
            return None;
        }
        Some(pem)
    }

    /// A URL that must be https, or http on a loopback host.
    fn url(&mut self, key: &str, value: &str) -> Option<Url> {
        match Url::parse(value) {
            Ok(u) if u.scheme() == "https" => Some(u),
            Ok(u) if u.scheme() == "http" && is_loopback(&u) => Some(u),
            Ok(u) if u.scheme() == "http" => {
                self.fail(
                    key,
                    format!("`{value}` uses http:// on a non-loopback host; use https:// (http is allowed only for 127.0.0.0/8, ::1 and localhost)"),
                );
                None
            }
            Ok(_) => {
                self.fail(key, format!("`{value}` must be an http(s) URL"));
                None
            }
            Err(e) => {
                self.fail(key, format!("`{value}` is not a URL: {e}"));
                None
            }
        }
    }

    /// A secret given inline or as a file, never both.
    fn secret(
        &mut self,
        key: &str,
        inline: &Option<String>,
        file: &Option<String>,
    ) -> Option<Vec<u8>> {
        let file_key = format!("{key}_file");
        match (inline, file) {
            (Some(_), Some(_)) => {
                self.fail(key, format!("set either `{key}` or `{file_key}`, not both"));
                None
            }
            (Some(s), None) => Some(s.as_bytes().to_vec()),
            (None, Some(path)) => match read_file(path) {
                Ok(mut bytes) => {
                    // Kubernetes secrets and `echo` often leave a trailing newline.
                    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        bytes.pop();
                    }
                    Some(bytes)
                }
                Err(e) => {
                    self.fail(&file_key, format!("cannot read `{path}`: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Decodes session key material (standard or URL-safe base64, padded or not).
pub fn decode_key(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let t = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(t).ok())
}

/// Minimum session key material, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

// One key check after another, in file order, sharing one error list; the
// split into one function per section is the open part of issue #13.
#[allow(clippy::too_many_lines)]
fn validate(raw: &RawConfig, figment: &Figment) -> Result<Config, ConfigError> {
    let mut c = Check {
        figment,
        errors: Vec::new(),
    };

    // [server]
    let listen = match raw.server.listen.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            c.fail(
                "server.listen",
                format!(
                    "`{}` is not an address like \"0.0.0.0:4180\"",
                    raw.server.listen
                ),
            );
            SocketAddr::from(([0, 0, 0, 0], 0))
        }
    };
    let public_url_text = c
        .required("server.public_url", &raw.server.public_url)
        .to_string();
    let public_url = if public_url_text.is_empty() {
        None
    } else {
        c.url("server.public_url", &public_url_text)
    };
    if let Some(u) = &public_url {
        if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
            c.fail("server.public_url", "must be an origin such as \"https://app.example.com\" (no path, query or fragment)");
        }
    }
    let shutdown_grace = c.duration("server.shutdown_grace", &raw.server.shutdown_grace);
    let header_read_timeout = c.duration(
        "server.header_read_timeout",
        &raw.server.header_read_timeout,
    );
    if header_read_timeout.is_zero() {
        c.fail("server.header_read_timeout", "must be more than zero");
    }
    let idle_timeout = c.duration("server.idle_timeout", &raw.server.idle_timeout);
    if idle_timeout.is_zero() {
        c.fail("server.idle_timeout", "must be more than zero");
    }
    if raw.server.max_connections == 0 {
        c.fail("server.max_connections", "must be at least 1");
    }
    let tls = match &raw.server.tls {
        None => None,
        Some(t) => {
            let files = TlsFiles {
                cert_file: PathBuf::from(&t.cert_file),
                key_file: PathBuf::from(&t.key_file),
            };
            match crate::server::tls::load(&files.cert_file, &files.key_file) {
                Ok(_) => Some(files),
                Err(e @ crate::server::tls::TlsError::Certs { .. }) => {
                    c.fail("server.tls.cert_file", e.to_string());
                    None
                }
                Err(e) => {
                    c.fail("server.tls.key_file", e.to_string());
                    None
                }
            }
        }
    };
    let mut trusted_proxies = Vec::new();
    for p in &raw.server.trusted_proxies {
        let parsed = p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
        match parsed {
            Ok(net) => trusted_proxies.push(net),
            Err(_) => c.fail(
                "server.trusted_proxies",
                format!("`{p}` is not an address or CIDR range like \"10.0.0.0/8\""),
            ),
        }
    }

    // [upstream]
    let upstream_text = c.required("upstream.url", &raw.upstream.url).to_string();
    let upstream_url = match Url::parse(&upstream_text) {
        Ok(u) if u.scheme() == "http" && u.host().is_some() => Some(u),
        Ok(u) if u.scheme() == "https" && u.host().is_some() => Some(u),
        Ok(_) => {
            c.fail(
                "upstream.url",
                format!("`{upstream_text}` must be an http:// or https:// URL with a host"),
            );
            None
        }
        Err(e) if !upstream_text.is_empty() => {
            c.fail(
                "upstream.url",
                format!("`{upstream_text}` is not a URL: {e}"),
            );
            None
        }
        Err(_) => None,
    };
    if let Some(u) = &upstream_url {
        if u.query().is_some() || u.fragment().is_some() {
            c.fail("upstream.url", "must not have a query or fragment");
        }
    }
    let upstream_timeout = c.duration("upstream.timeout", &raw.upstream.timeout);
    let upstream_ca = raw
        .upstream
        .ca_file
        .as_ref()
        .and_then(|p| c.pem_certs("upstream.ca_file", p));
    let client_cert = match (
        &raw.upstream.client_cert_file,
        &raw.upstream.client_key_file,
    ) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let cert_pem = c.pem_certs("upstream.client_cert_file", cert);
            let key_pem = match read_file(key) {
                Ok(k) => Some(Secret::new(k)),
                Err(e) => {
                    c.fail(
                        "upstream.client_key_file",
                        format!("cannot read `{key}`: {e}"),
                    );
                    None
                }
            };
            cert_pem.zip(key_pem)
        }
        (Some(_), None) => {
            c.fail(
                "upstream.client_key_file",
                "is required with upstream.client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            c.fail(
                "upstream.client_cert_file",
                "is required with upstream.client_key_file",
            );
            None
        }
    };
    let mut claim_headers = Vec::new();
    for (name, claim) in &raw.headers {
        const RESERVED: [&str; 11] = [
            "host",
            "cookie",
            "authorization",
            "connection",
            "upgrade",
            "transfer-encoding",
            "content-length",
            "te",
            "trailer",
            "keep-alive",
            "x-request-id",
        ];
        match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if RESERVED.contains(&h.as_str()) => c.fail(
                &format!("headers.{name}"),
                "is a header tollgate or HTTP itself manages; pick another name",
            ),
            Ok(h) if !claim.is_empty() => claim_headers.push((h, claim.clone())),
            Ok(_) => c.fail(
                &format!("headers.{name}"),
                "needs a claim path such as \"sub\" or \"org.id\"",
            ),
            Err(_) => c.fail(
                &format!("headers.{name}"),
                format!("`{name}` is not a valid header name"),
            ),
        }
    }
    let assertion = if raw.upstream.assertion {
        let key = match &raw.upstream.assertion_key_file {
            Some(path) => {
                match read_file(path) {
                    Ok(pem) => {
                        match pkcs8_from_pem(&pem) {
                            Some(der) => Some(Secret::new(der)),
                            None => {
                                c.fail("upstream.assertion_key_file", format!("`{path}` is not a PEM \"PRIVATE KEY\" (PKCS#8) of a P-256 key"));
                                None
                            }
                        }
                    }
                    Err(e) => {
                        c.fail(
                            "upstream.assertion_key_file",
                            format!("cannot read `{path}`: {e}"),
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let cfg = AssertionConfig {
            key_pkcs8: key,
            audience: raw
                .upstream
                .assertion_audience
                .clone()
                .unwrap_or_else(|| upstream_text.trim_end_matches('/').to_string()),
        };
        // A key of the wrong kind is a config error, not a failed start.
        if let Err(e) = cfg.check_key() {
            c.fail("upstream.assertion_key_file", e.to_string());
        }
        Some(cfg)
    } else {
        None
    };
    let connect_timeout = c.duration("upstream.connect_timeout", &raw.upstream.connect_timeout);
    let header = |c: &mut Check<'_>, key: &str, value: &str| -> http::HeaderName {
        match http::HeaderName::from_bytes(value.as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                c.fail(key, format!("`{value}` is not a valid header name"));
                http::HeaderName::from_static("x-invalid")
            }
        }
    };
    let h = &raw.upstream.headers;
    let headers = IdentityHeaders {
        user: header(&mut c, "upstream.headers.user", &h.user),
        email: header(&mut c, "upstream.headers.email", &h.email),
        preferred_username: header(
            &mut c,
            "upstream.headers.preferred_username",
            &h.preferred_username,
        ),
        groups: header(&mut c, "upstream.headers.groups", &h.groups),
        access_token: header(&mut c, "upstream.headers.access_token", &h.access_token),
    };

    // [provider]
    let p = &raw.provider;
    let issuer = c.required("provider.issuer", &p.issuer).to_string();
    if !issuer.is_empty() {
        if let Some(u) = c.url("provider.issuer", &issuer) {
            if u.query().is_some() || u.fragment().is_some() {
                c.fail(
                    "provider.issuer",
                    "must not have a query or fragment (OIDC Discovery §3)",
                );
            }
        }
    }
    let client_id = c.required("provider.client_id", &p.client_id).to_string();
    let client_auth = match p.client_auth.as_str() {
        "client_secret_basic" => ClientAuth::ClientSecretBasic,
        "client_secret_post" => ClientAuth::ClientSecretPost,
        "none" => ClientAuth::None,
        other => {
            c.fail("provider.client_auth", format!("`{other}` is not one of \"client_secret_basic\", \"client_secret_post\", \"none\""));
            ClientAuth::ClientSecretBasic
        }
    };
    let client_secret = c.secret(
        "provider.client_secret",
        &p.client_secret,
        &p.client_secret_file,
    );
    match (&client_secret, client_auth) {
        (None, ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost) => c.fail(
            "provider.client_secret",
            format!(
                "is required with client_auth = \"{}\" (or set `provider.client_secret_file`)",
                p.client_auth
            ),
        ),
        (Some(s), _) if s.is_empty() => c.fail("provider.client_secret", "is empty"),
        // RFC 6749 Appendix A says VSCHAR, yet Appendix B's own example
        // encodes `£` and `€`: non-ASCII secrets exist, and the Basic
        // encoding carries them. Control characters never belong in one
        // (a trailing newline from a secret file is the usual culprit).
        (Some(s), _) if std::str::from_utf8(s).is_err() => {
            c.fail("provider.client_secret", "is not valid UTF-8")
        }
        (Some(s), _) if String::from_utf8_lossy(s).chars().any(char::is_control) => c.fail(
            "provider.client_secret",
            "contains a control character (a trailing newline in the secret file?)",
        ),
        _ => {}
    }
    if client_auth == ClientAuth::None && !p.pkce {
        c.fail(
            "provider.pkce",
            "a public client (client_auth = \"none\") must use PKCE",
        );
    }
    if !p.scopes.iter().any(|s| s == "openid") {
        c.fail("provider.scopes", "must include \"openid\"");
    }
    if let Some(bad) = p.scopes.iter().find(|s| {
        s.is_empty()
            || s.chars()
                .any(|ch| ch == ' ' || ch == '"' || ch == '\\' || ch.is_control())
    }) {
        c.fail(
            "provider.scopes",
            format!("`{bad}` is not a valid scope token (RFC 6749 §3.3)"),
        );
    }
    let mut id_token_algorithms = Vec::new();
    if p.id_token_algorithms.is_empty() {
        c.fail(
            "provider.id_token_algorithms",
            "must name at least one algorithm",
        );
    }
    for name in &p.id_token_algorithms {
        match name.parse::<Algorithm>() {
            Ok(a) => {
                if matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) && client_secret.is_none() {
                    c.fail("provider.id_token_algorithms", format!("{name} needs a client secret (HMAC ID tokens are keyed with it)"));
                }
                // RFC 7518 §3.2: an HMAC key at least as long as the hash.
                let min = match a {
                    Algorithm::HS256 => 32,
                    Algorithm::HS384 => 48,
                    Algorithm::HS512 => 64,
                    _ => 0,
                };
                if let Some(secret) = client_secret.as_ref().filter(|s| s.len() < min) {
                    c.fail("provider.client_secret", format!("is {} bytes, but {name} ID tokens need a key of at least {min} bytes (RFC 7518 §3.2)", secret.len()));
                }
                id_token_algorithms.push(a);
            }
            Err(_) => c.fail(
                "provider.id_token_algorithms",
                format!("`{name}` is not a supported algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA, HS256/384/512; \"none\" is never accepted)"),
            ),
        }
    }
    let clock_skew = c.duration("provider.clock_skew", &p.clock_skew);
    if clock_skew > Duration::from_secs(300) {
        c.fail("provider.clock_skew", "must be at most 300s");
    }
    let id_token_max_age = c.duration("provider.id_token_max_age", &p.id_token_max_age);
    let id_token_max_age = (!id_token_max_age.is_zero()).then_some(id_token_max_age);
    for (i, a) in p.trusted_audiences.iter().enumerate() {
        if a.is_empty() {
            c.fail(
                &format!("provider.trusted_audiences[{i}]"),
                "must not be empty",
            );
        }
    }
    let provider_timeout = c.duration("provider.timeout", &p.timeout);
    if provider_timeout.is_zero() {
        c.fail("provider.timeout", "must be more than zero");
    }
    let redirect_url = match (&p.redirect_url, &public_url) {
        (Some(r), _) => c.url("provider.redirect_url", r),
        (None, Some(base)) => base.join(CALLBACK_PATH).ok(),
        (None, None) => None,
    };
    if let Some(r) = &redirect_url {
        if r.path() != CALLBACK_PATH {
            c.fail(
                "provider.redirect_url",
                format!("must end in {CALLBACK_PATH}, the path tollgate serves the callback on"),
            );
        }
    }
    let post_logout_redirect_url = match (&p.post_logout_redirect_url, &public_url) {
        (Some(r), _) => c.url("provider.post_logout_redirect_url", r),
        (None, Some(base)) => Some(base.clone()),
        (None, None) => None,
    };
    let provider_ca = p
        .ca_file
        .as_ref()
        .and_then(|path| c.pem_certs("provider.ca_file", path));
    if p.groups_claim.is_empty() {
        c.fail("provider.groups_claim", "must not be empty");
    }

    // [session]
    let s = &raw.session;
    let mut secrets = Vec::new();
    match c.secret("session.secret", &s.secret, &s.secret_file) {
        None if s.secret.is_none() && s.secret_file.is_none() => c.fail(
            "session.secret",
            "is required: generate one with `tollgate generate-secret` (or set `session.secret_file`)",
        ),
        None => {}
        Some(bytes) => match std::str::from_utf8(&bytes).ok().and_then(decode_key) {
            Some(k) if k.len() >= MIN_SECRET_BYTES => secrets.push(Secret::new(k)),
            Some(k) => c.fail("session.secret", format!("decodes to {} bytes; at least {MIN_SECRET_BYTES} are needed (use `tollgate generate-secret`)", k.len())),
            None => c.fail("session.secret", "is not base64 key material (use `tollgate generate-secret`)"),
        },
    }
    for (i, prev) in s.previous_secrets.iter().enumerate() {
        match decode_key(prev) {
            Some(k) if k.len() >= MIN_SECRET_BYTES => secrets.push(Secret::new(k)),
            _ => c.fail(
                "session.previous_secrets",
                format!(
                    "entry {i} is not base64 key material of at least {MIN_SECRET_BYTES} bytes"
                ),
            ),
        }
    }
    if s.cookie_name.is_empty()
        || !s
            .cookie_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    {
        c.fail(
            "session.cookie_name",
            format!(
                "`{}` must be non-empty and use only letters, digits, `_`, `-` and `.`",
                s.cookie_name
            ),
        );
    }
    let lifetime = c.duration("session.lifetime", &s.lifetime);
    if lifetime < Duration::from_secs(60) {
        c.fail("session.lifetime", "must be at least 1m");
    }
    let same_site = match s.same_site.to_ascii_lowercase().as_str() {
        "lax" => cookie::SameSite::Lax,
        "strict" => cookie::SameSite::Strict,
        "none" => cookie::SameSite::None,
        other => {
            c.fail(
                "session.same_site",
                format!("`{other}` is not one of \"lax\", \"strict\", \"none\""),
            );
            cookie::SameSite::Lax
        }
    };
    if same_site == cookie::SameSite::None && !s.secure {
        c.fail(
            "session.same_site",
            "\"none\" requires session.secure = true (browsers drop such cookies otherwise)",
        );
    }
    if !s.path.starts_with('/') {
        c.fail("session.path", "must start with `/`");
    }
    check_cookie_prefix(&mut c, s);
    if let Some(d) = &s.domain {
        if d.is_empty() || d.contains([';', ',', ' ', '/']) {
            c.fail("session.domain", format!("`{d}` is not a cookie domain"));
        }
    }
    let refresh_before = c.duration("session.refresh_before", &s.refresh_before);
    let redis = match s.store.as_str() {
        "cookie" => None,
        "redis" => redis_config(&mut c, &s.redis),
        other => {
            c.fail(
                "session.store",
                format!("`{other}` is not one of \"cookie\", \"redis\""),
            );
            None
        }
    };

    // [log]
    let json = match raw.log.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            c.fail(
                "log.format",
                format!("`{other}` is not one of \"text\", \"json\""),
            );
            false
        }
    };
    if !matches!(
        raw.log.level.to_ascii_lowercase().as_str(),
        "trace" | "debug" | "info" | "warn" | "error"
    ) {
        c.fail(
            "log.level",
            format!(
                "`{}` is not one of trace, debug, info, warn, error",
                raw.log.level
            ),
        );
    }

    // [authorization], [routes], redirects
    let compiled = |c: &mut Check<'_>, errs: Vec<(String, String)>| {
        for (k, m) in errs {
            c.fail(&k, m);
        }
    };
    let fold_case = raw.upstream.case_insensitive_paths;
    // Checked here, by key; the gateway compiles them again for use.
    if let Err(e) = crate::authz::Policy::new(&raw.authorization, fold_case) {
        compiled(&mut c, e);
    }
    if let Err(e) = crate::proxy::path::PublicRoutes::new(&raw.routes, fold_case) {
        compiled(&mut c, e);
    }
    if let Some(origin) = public_url.clone() {
        let domains = &raw.server.allowed_redirect_domains;
        if let Err(e) = crate::auth::redirect::RedirectPolicy::new(origin, domains) {
            compiled(&mut c, e);
        }
    }
    let bearer = BearerConfig {
        audiences: raw.authorization.bearer_audiences.clone(),
        algorithms: bearer_algorithms(&mut c, &raw.authorization.bearer_algorithms),
        introspection: raw.authorization.bearer_introspection,
    };
    if bearer.audiences.iter().any(String::is_empty) {
        c.fail(
            "authorization.bearer_audiences",
            "entries must not be empty",
        );
    }
    if let Some(id) = &raw.provider.client_id {
        if bearer.audiences.iter().any(|a| a == id) {
            c.fail(
                "authorization.bearer_audiences",
                "must not contain provider.client_id: ID tokens carry that audience and must not pass as access tokens",
            );
        }
    }

    let metrics_listen = match &raw.metrics.listen {
        None => None,
        Some(l) => {
            match l.parse::<SocketAddr>() {
                Ok(a) if a == listen => {
                    c.fail("metrics.listen", "must differ from server.listen: metrics are never served on the proxied port");
                    None
                }
                Ok(a) => Some(a),
                Err(_) => {
                    c.fail(
                        "metrics.listen",
                        format!("`{l}` is not an address like \"0.0.0.0:9090\""),
                    );
                    None
                }
            }
        }
    };

    if !c.errors.is_empty() {
        return Err(ConfigError::Invalid(c.errors));
    }
    // Every `None` below was reported as an error above.
    let (Some(public_url), Some(upstream_url), Some(redirect_url), Some(post_logout_redirect_url)) = (
        public_url,
        upstream_url,
        redirect_url,
        post_logout_redirect_url,
    ) else {
        return Err(ConfigError::Invalid(vec![KeyError {
            key: "server.public_url".into(),
            origin: origin(figment, "server.public_url"),
            message: "is required".into(),
        }]));
    };
    Ok(Config {
        server: ServerConfig {
            listen,
            public_url,
            shutdown_grace,
            header_read_timeout,
            idle_timeout,
            max_connections: raw.server.max_connections,
            max_connections_per_client: raw.server.max_connections_per_client,
            max_requests_per_connection: raw.server.max_requests_per_connection,
            trusted_proxies,
            allowed_redirect_domains: raw.server.allowed_redirect_domains.clone(),
            tls,
        },
        upstream: UpstreamConfig {
            url: upstream_url,
            timeout: upstream_timeout,
            connect_timeout,
            pass_host_header: raw.upstream.pass_host_header,
            case_insensitive_paths: raw.upstream.case_insensitive_paths,
            pass_user_headers: raw.upstream.pass_user_headers,
            pass_access_token: raw.upstream.pass_access_token,
            pass_authorization_header: raw.upstream.pass_authorization_header,
            headers,
            claim_headers,
            assertion,
            ca_file: upstream_ca,
            client_cert,
        },
        provider: ProviderConfig {
            issuer,
            client_id,
            client_secret: client_secret.map(Secret::new),
            client_auth,
            scopes: p.scopes.clone(),
            redirect_url,
            post_logout_redirect_url,
            pkce: p.pkce,
            id_token_algorithms,
            clock_skew,
            id_token_max_age,
            trusted_audiences: p.trusted_audiences.clone(),
            strict_audience: p.strict_audience,
            groups_claim: p.groups_claim.clone(),
            fetch_userinfo: p.fetch_userinfo,
            timeout: provider_timeout,
            ca_file: provider_ca,
        },
        session: SessionConfig {
            secrets,
            cookie_name: s.cookie_name.clone(),
            lifetime,
            secure: s.secure,
            same_site,
            domain: s.domain.clone(),
            path: s.path.clone(),
            refresh_before,
            confirm_sign_out: s.confirm_sign_out,
            max_remembered_logouts: s.max_remembered_logouts,
            redis,
        },
        log: LogConfig {
            level: raw.log.level.to_ascii_lowercase(),
            json,
        },
        authorization: raw.authorization.clone(),
        routes: raw.routes.clone(),
        bearer,
        metrics_listen,
    })
}

fn redis_config(c: &mut Check<'_>, r: &raw::RawRedis) -> Option<RedisConfig> {
    let mode = match r.mode.as_str() {
        "standalone" => RedisMode::Standalone,
        "sentinel" => RedisMode::Sentinel,
        "cluster" => RedisMode::Cluster,
        other => {
            c.fail(
                "session.redis.mode",
                format!("`{other}` is not one of \"standalone\", \"sentinel\", \"cluster\""),
            );
            return None;
        }
    };
    let password = c.secret("session.redis.password", &r.password, &r.password_file);
    // `url` is the server in standalone mode only; sentinel and cluster
    // modes use `nodes`.
    let mut urls: Vec<(&str, &String)> = Vec::new();
    if mode == RedisMode::Standalone {
        urls.push(("session.redis.url", &r.url));
    }
    urls.extend(r.nodes.iter().map(|n| ("session.redis.nodes", n)));
    let mut tls = None;
    for (key, u) in &urls {
        match url::Url::parse(u) {
            Ok(p) if p.scheme() == "redis" || p.scheme() == "rediss" => {
                let this = p.scheme() == "rediss";
                if tls.is_some_and(|t| t != this) {
                    c.fail(key, "mix of redis:// and rediss:// URLs");
                }
                tls = Some(this);
            }
            _ => c.fail(
                key,
                format!("`{}` is not a redis:// or rediss:// URL", mask(u)),
            ),
        }
    }
    if mode != RedisMode::Standalone && r.nodes.is_empty() {
        c.fail(
            "session.redis.nodes",
            "sentinel and cluster modes need at least one node URL",
        );
    }
    let timeout = c.duration("session.redis.timeout", &r.timeout);
    if timeout.is_zero() {
        c.fail("session.redis.timeout", "must be more than zero");
    }
    if r.key_prefix.is_empty() {
        c.fail(
            "session.redis.key_prefix",
            "must not be empty (other data may share the database)",
        );
    }
    // The password (and user), when given separately, go into every URL so
    // each mode's client picks them up the same way.
    let with_auth = |u: &str| -> String {
        let Ok(mut p) = url::Url::parse(u) else {
            return u.to_string();
        };
        if let Some(user) = &r.username {
            let _ = p.set_username(user);
        }
        if let Some(pw) = &password {
            let _ = p.set_password(Some(&String::from_utf8_lossy(pw)));
        }
        p.to_string()
    };
    Some(RedisConfig {
        url: with_auth(&r.url),
        mode,
        // Sentinels authenticate separately (in their URLs); the password
        // is for the data nodes, passed through `node_connection_info`.
        nodes: if mode == RedisMode::Sentinel {
            r.nodes.clone()
        } else {
            r.nodes.iter().map(|n| with_auth(n)).collect()
        },
        sentinel_master: r.sentinel_master.clone(),
        username: r.username.clone(),
        password: password.map(Secret::new),
        tls: tls.unwrap_or(false),
        key_prefix: r.key_prefix.clone(),
        timeout,
    })
}

fn mask(u: &str) -> String {
    match Url::parse(u) {
        Ok(mut p) if p.password().is_some() => {
            let _ = p.set_password(Some("redacted"));
            p.to_string()
        }
        _ => u.to_string(),
    }
}

/// The DER inside a PEM `PRIVATE KEY` block (PKCS#8), via rustls' PEM parser.
fn pkcs8_from_pem(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivatePkcs8KeyDer;
    PrivatePkcs8KeyDer::from_pem_slice(pem)
        .ok()
        .map(|k| k.secret_pkcs8_der().to_vec())
}

/// Cookie name prefixes (RFC 6265bis §4.1.3, matched ignoring case):
/// browsers drop a `__Secure-` cookie without `Secure`, and a `__Host-`
/// cookie unless it is `Secure`, has `Path=/` and no `Domain`. Refused here,
/// by key, rather than as logins that silently never complete.
fn check_cookie_prefix(c: &mut Check<'_>, s: &raw::RawSession) {
    let name = s.cookie_name.to_ascii_lowercase();
    let host = name.starts_with("__host-");
    if (host || name.starts_with("__secure-")) && !s.secure {
        c.fail(
            "session.secure",
            format!(
                "must be true: browsers drop `{}` cookies without Secure",
                s.cookie_name
            ),
        );
    }
    if host && s.domain.is_some() {
        c.fail(
            "session.domain",
            "must be unset with a `__Host-` cookie name (host-only cookies)",
        );
    }
    if host && s.path != "/" {
        c.fail("session.path", "must be \"/\" with a `__Host-` cookie name");
    }
}

/// Whether the session cookie name carries the `__Host-` prefix.
pub fn is_host_cookie(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("__host-"))
}

/// `authorization.bearer_algorithms`: asymmetric algorithms only. A MAC
/// would be keyed with the client secret, which every replica holds, and
/// anyone holding it could mint access tokens for any user.
fn bearer_algorithms(c: &mut Check<'_>, names: &[String]) -> Vec<Algorithm> {
    const KEY: &str = "authorization.bearer_algorithms";
    if names.is_empty() {
        c.fail(KEY, "must name at least one algorithm");
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        match name.parse::<Algorithm>() {
            Ok(a) if crate::oidc::jws::is_hmac(a) => c.fail(
                KEY,
                format!("{name} is a MAC keyed with a shared secret; bearer tokens must be signed with the provider's private key"),
            ),
            Ok(a) => out.push(a),
            Err(_) => c.fail(
                KEY,
                format!("`{name}` is not a supported algorithm (RS256/384/512, PS256/384/512, ES256/384, EdDSA; \"none\" is never accepted)"),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests;
