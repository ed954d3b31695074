//! Configuration: load (built-in defaults ← TOML file ← `TOLLGATE_*`
//! environment ← `*_file` secrets), validate, and hand the rest of the crate a
//! typed [`Config`] of plain data.
//!
//! Every error names the key and where its value came from (the file, the
//! environment variable, or "not set"), and all errors are reported
//! at once so a broken config is fixed in one round trip.

pub mod init;
mod raw;
mod validate;

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

// Each section's types belong to the component that uses them; the loader
// fills them in.
pub use crate::auth::settings::BearerConfig;
pub use crate::oidc::settings::{ClientAuth, ProviderConfig};
pub use crate::proxy::settings::{IdentityHeaders, UpstreamConfig, UpstreamRoute};
pub use crate::server::settings::{ServerConfig, TlsFiles};
pub use crate::session::settings::{RedisConfig, RedisMode, SessionConfig, MIN_SECRET_BYTES};
pub use crate::telemetry::settings::LogConfig;

/// The config file used when neither `--config` nor `TOLLGATE_CONFIG` names one.
pub const DEFAULT_CONFIG_PATH: &str = "tollgate.toml";
/// The path the authorization response comes back to.
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// Where a browser sign-in starts.
pub const START_PATH: &str = "/oauth2/start";
/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "TOLLGATE_";

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// `[upstream]`: what every upstream shares.
    pub upstream: UpstreamConfig,
    /// Where each host and path prefix goes: the `[[upstreams]]` entries,
    /// or `[upstream]` for every host. Never empty.
    pub upstreams: Vec<UpstreamRoute>,
    /// `[provider]` and `[[providers]]`, in that order: never empty. The
    /// first signs in browsers when no choice is made and checks bearer
    /// tokens.
    pub providers: Vec<ProviderConfig>,
    pub session: SessionConfig,
    pub log: LogConfig,
    /// `[authorization]` as written (validated): compiled by the gateway.
    pub authorization: crate::authz::RawAuthorization,
    /// `[routes]` as written (validated): compiled by the gateway.
    pub routes: crate::proxy::path::RawRoutes,
    pub bearer: BearerConfig,
    /// Where Prometheus metrics are served; `None`: nowhere.
    pub metrics_listen: Option<SocketAddr>,
    /// `[pages]`.
    pub pages: crate::pages::branding::Branding,
}

impl Config {
    /// What is valid but probably not meant: printed by `check-config` and
    /// logged at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let s = &self.server;
        // `[[upstreams]]` naming hosts share a session through
        // session.domain with tollgate as their proxy: no ingress involved.
        let routes_hosts = self.upstreams.iter().any(|r| r.host.is_some());
        if s.trusted_proxies.is_empty()
            && !routes_hosts
            && (self.session.domain.is_some() || !s.allowed_redirect_domains.is_empty())
        {
            out.push(
                "session.domain or server.allowed_redirect_domains is set, as for forward-auth \
                 behind an ingress, but server.trusted_proxies is empty: /oauth2/auth then \
                 ignores the ingress's X-Forwarded-Uri/-Host (rules judge every path alike, \
                 public routes are not consulted) and hands it no access token. List the \
                 ingress's addresses in server.trusted_proxies."
                    .into(),
            );
        }
        out
    }

    /// The first provider: `[provider]`, or the first of `[[providers]]`.
    pub fn provider(&self) -> &ProviderConfig {
        // Validation never builds a `Config` without a provider.
        &self.providers[0]
    }
}

pub use crate::proxy::assertion::AssertionConfig;

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
        // A syntax error belongs to the file, not to a key.
        if self.key.is_empty() {
            return write!(f, "{}: {}", self.origin, self.message.trim_end());
        }
        write!(f, "`{}` ({}): {}", self.key, self.origin, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path} does not exist (named by {named_by})")]
    FileMissing { path: PathBuf, named_by: String },
    #[error("no configuration: ./{DEFAULT_CONFIG_PATH} does not exist and no TOLLGATE_<SECTION>__<KEY> variable is set. `tollgate init --issuer URL --client-id ID --upstream URL --public-url URL` writes one; or name a file with --config or TOLLGATE_CONFIG")]
    NoConfig,
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
    let config = validate::validate(&raw, &figment)?;
    Ok((config, raw))
}

/// Loads and validates a config from TOML text (fuzzing, tests): the same
/// rules as [`load`], with no file involved.
pub fn load_str(text: &str, env: &[(String, String)]) -> Result<(Config, RawConfig), ConfigError> {
    let figment = with_env(Figment::new().merge(Toml::string(text)), env);
    let raw: RawConfig = figment.extract().map_err(|e| from_figment(e, &figment))?;
    let config = validate::validate(&raw, &figment)?;
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
            if !p.is_file() && !env.iter().any(|(k, _)| is_config_var(k)) {
                return Err(ConfigError::NoConfig);
            }
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
        .filter(|(k, _)| is_config_var(k))
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

/// `TOLLGATE_<SECTION>__<KEY>`: every key lives in a section, and
/// Kubernetes injects `TOLLGATE_PORT`, `TOLLGATE_SERVICE_HOST`, … for a
/// Service named tollgate; those are not config.
fn is_config_var(name: &str) -> bool {
    name.strip_prefix(ENV_PREFIX)
        .is_some_and(|rest| rest.contains("__"))
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
        // No file or variable sets it: a required key that is missing, or
        // a default that conflicts with another key.
        None => "not set".to_string(),
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
    /// While an entry of `[[providers]]` or `[[upstreams]]` is checked.
    entry: Option<Entry>,
}

/// An array entry being checked: problems under `section.` (`provider.`)
/// are reported under its own key (`providers[1].`).
struct Entry {
    section: &'static str,
    list: &'static str,
    key: String,
}

impl Entry {
    fn new(section: &'static str, list: &'static str, index: usize) -> Self {
        Self {
            section,
            list,
            key: format!("{list}[{index}]"),
        }
    }
}

impl Check<'_> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        let within = self.entry.as_ref().and_then(|e| {
            let rest = key.strip_prefix(e.section)?.strip_prefix('.')?;
            Some((format!("{}.{rest}", e.key), origin(self.figment, e.list)))
        });
        let (key, origin) = within.unwrap_or_else(|| (key.to_string(), origin(self.figment, key)));
        self.errors.push(KeyError {
            key,
            origin,
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
