//! The configuration as users write it: plain serde structs with every default
//! spelled out, `deny_unknown_fields` everywhere so a typo is an error and not a
//! silently ignored key.
//!
//! Strings that may come from the environment go through [`string_like`]:
//! figment parses `TOLLGATE_PROVIDER__CLIENT_ID=12345` as a number, and a
//! numeric client id or secret must still load.

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub upstream: RawUpstream,
    /// Several upstreams, routed by host and path prefix: each entry is
    /// `host`, `path_prefix` and the `[upstream]` keys it changes (the
    /// rest it takes from `[upstream]`). Kept as written so that what an
    /// entry leaves out can be told from what it sets.
    pub upstreams: Vec<figment::value::Dict>,
    pub provider: RawProvider,
    /// More providers, each a full `[provider]` table with an `id`.
    pub providers: Vec<RawProvider>,
    pub session: RawSession,
    pub log: RawLog,
    /// Extra upstream headers from claims: header name → claim path.
    pub headers: std::collections::BTreeMap<String, String>,
    pub authorization: crate::authz::RawAuthorization,
    pub routes: crate::proxy::path::RawRoutes,
    pub metrics: RawMetrics,
    pub pages: RawPages,
}

impl RawConfig {
    /// Whether `[provider]` is one of the providers: when it is written,
    /// or when `[[providers]]` is empty (then it is the one, however
    /// incomplete).
    pub fn has_primary_provider(&self) -> bool {
        self.providers.is_empty()
            || self.provider.issuer.is_some()
            || self.provider.client_id.is_some()
    }

    /// `[provider]` (when it counts) and `[[providers]]`.
    pub fn all_providers(&self) -> impl Iterator<Item = &RawProvider> {
        self.has_primary_provider()
            .then_some(&self.provider)
            .into_iter()
            .chain(&self.providers)
    }
}

/// `[pages]`: how tollgate's own pages look.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPages {
    pub product_name: String,
    pub logo_url: Option<String>,
    pub accent_color: String,
    pub support_url: Option<String>,
    /// A page template (MiniJinja) used instead of the built-in page.
    pub template_file: Option<String>,
}

impl Default for RawPages {
    fn default() -> Self {
        Self {
            product_name: String::new(),
            logo_url: None,
            accent_color: "#0a58ca".into(),
            support_url: None,
            template_file: None,
        }
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    /// Where `/metrics` is served; off when unset.
    #[serde(deserialize_with = "opt_string_like")]
    pub listen: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    #[serde(deserialize_with = "string_like")]
    pub listen: String,
    #[serde(deserialize_with = "opt_string_like")]
    pub public_url: Option<String>,
    pub shutdown_grace: String,
    pub header_read_timeout: String,
    pub idle_timeout: String,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_requests_per_connection: usize,
    pub trusted_proxies: Vec<String>,
    pub allowed_redirect_domains: Vec<String>,
    pub tls: Option<RawTls>,
    pub health_path: String,
    pub ready_path: String,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    pub cert_file: String,
    pub key_file: String,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:4180".into(),
            public_url: None,
            shutdown_grace: "10s".into(),
            header_read_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            max_connections: 10_000,
            max_connections_per_client: 256,
            max_requests_per_connection: 1000,
            trusted_proxies: Vec::new(),
            allowed_redirect_domains: Vec::new(),
            tls: None,
            health_path: "/healthz".into(),
            ready_path: "/readyz".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    #[serde(deserialize_with = "opt_string_like")]
    pub url: Option<String>,
    pub timeout: String,
    pub connect_timeout: String,
    pub pass_host_header: bool,
    /// The upstream serves `/Admin` and `/admin` as one resource (IIS,
    /// some Spring and ASP.NET setups): rules and public routes then match
    /// paths ignoring ASCII case.
    pub case_insensitive_paths: bool,
    pub pass_user_headers: bool,
    /// Unset: on, except with DPoP (a bound token is useless upstream).
    pub pass_access_token: Option<bool>,
    pub pass_authorization_header: bool,
    pub headers: RawIdentityHeaders,
    pub assertion: bool,
    pub assertion_key_file: Option<String>,
    /// PEM roots for an https upstream (instead of the system's).
    pub ca_file: Option<String>,
    /// Client certificate and key (PEM) for mTLS to the upstream.
    pub client_cert_file: Option<String>,
    pub client_key_file: Option<String>,
    #[serde(deserialize_with = "opt_string_like")]
    pub assertion_audience: Option<String>,
    /// Most requests waiting for the upstream's answer at once; 0: no limit.
    pub max_in_flight: usize,
    /// How long a request over `max_in_flight` may wait for a slot.
    pub queue_timeout: String,
    /// `http1` or `http2` (h2c with prior knowledge over http://, ALPN
    /// `h2` over https://). Unset: `http2` for an `h2c://` URL, else
    /// `http1`.
    pub protocol: Option<String>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: None,
            timeout: "60s".into(),
            connect_timeout: "5s".into(),
            pass_host_header: true,
            case_insensitive_paths: false,
            pass_user_headers: true,
            pass_access_token: None,
            pass_authorization_header: false,
            headers: RawIdentityHeaders::default(),
            assertion: false,
            assertion_key_file: None,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            assertion_audience: None,
            max_in_flight: 0,
            queue_timeout: "1s".into(),
            protocol: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentityHeaders {
    pub user: String,
    pub email: String,
    pub preferred_username: String,
    pub groups: String,
    pub access_token: String,
}

impl Default for RawIdentityHeaders {
    fn default() -> Self {
        Self {
            user: "X-Forwarded-User".into(),
            email: "X-Forwarded-Email".into(),
            preferred_username: "X-Forwarded-Preferred-Username".into(),
            groups: "X-Forwarded-Groups".into(),
            access_token: "X-Forwarded-Access-Token".into(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProvider {
    /// How sessions, login links and rules name this provider; `default`
    /// for `[provider]` unless set, required in `[[providers]]`.
    pub id: Option<String>,
    /// Shown on the sign-in chooser.
    pub name: Option<String>,
    /// Hosts (`app.example.com`, `*.example.com`) whose users sign in with
    /// this provider without a choice.
    pub hosts: Vec<String>,
    pub kind: String,
    pub hosted_domains: Vec<String>,
    pub tenant: Option<String>,
    pub allowed_tenants: Vec<String>,
    pub graph_url: String,
    #[serde(deserialize_with = "opt_string_like")]
    pub issuer: Option<String>,
    #[serde(deserialize_with = "opt_string_like")]
    pub client_id: Option<String>,
    #[serde(deserialize_with = "opt_string_like", serialize_with = "redacted")]
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    /// Unset: `client_secret_basic` (`client_secret_post` for GitHub).
    pub client_auth: Option<String>,
    pub client_key_file: Option<String>,
    pub client_key_algorithm: Option<String>,
    pub client_key_id: Option<String>,
    pub client_key_certificate_file: Option<String>,
    pub client_extra_key_files: Vec<String>,
    pub client_assertion_file: Option<String>,
    pub tls_client_certificate_file: Option<String>,
    pub tls_client_key_file: Option<String>,
    pub client_assertion_audience: String,
    pub pushed_authorization: bool,
    pub dpop: bool,
    pub dpop_key_file: Option<String>,
    pub profile: Option<String>,
    pub prompt: Option<String>,
    pub response_mode: String,
    pub max_age: Option<String>,
    pub acr_values: Vec<String>,
    pub extra_authorize_params: std::collections::BTreeMap<String, String>,
    pub scopes: Vec<String>,
    #[serde(deserialize_with = "opt_string_like")]
    pub redirect_url: Option<String>,
    #[serde(deserialize_with = "opt_string_like")]
    pub post_logout_redirect_url: Option<String>,
    pub pkce: bool,
    pub id_token_algorithms: Vec<String>,
    pub clock_skew: String,
    pub id_token_max_age: String,
    pub trusted_audiences: Vec<String>,
    pub strict_audience: bool,
    pub groups_claim: String,
    pub fetch_userinfo: bool,
    pub timeout: String,
    pub max_concurrent_calls: usize,
    /// PEM bundle of a private CA for the provider's TLS certificate.
    pub ca_file: Option<String>,
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            id: None,
            name: None,
            hosts: Vec::new(),
            kind: "oidc".into(),
            hosted_domains: Vec::new(),
            tenant: None,
            allowed_tenants: Vec::new(),
            graph_url: "https://graph.microsoft.com".into(),
            issuer: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            client_auth: None,
            client_key_file: None,
            client_key_algorithm: None,
            client_key_id: None,
            client_key_certificate_file: None,
            client_extra_key_files: Vec::new(),
            client_assertion_file: None,
            tls_client_certificate_file: None,
            tls_client_key_file: None,
            client_assertion_audience: "token_endpoint".into(),
            pushed_authorization: false,
            dpop: false,
            dpop_key_file: None,
            profile: None,
            prompt: None,
            response_mode: "query".into(),
            max_age: None,
            acr_values: Vec::new(),
            extra_authorize_params: std::collections::BTreeMap::new(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            redirect_url: None,
            post_logout_redirect_url: None,
            pkce: true,
            id_token_algorithms: vec![
                "RS256".into(),
                "ES256".into(),
                "PS256".into(),
                "EdDSA".into(),
            ],
            clock_skew: "60s".into(),
            id_token_max_age: "10m".into(),
            trusted_audiences: Vec::new(),
            strict_audience: false,
            groups_claim: "groups".into(),
            fetch_userinfo: true,
            timeout: "10s".into(),
            max_concurrent_calls: 64,
            ca_file: None,
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    #[serde(deserialize_with = "opt_string_like", serialize_with = "redacted")]
    pub secret: Option<String>,
    pub secret_file: Option<String>,
    #[serde(serialize_with = "redacted_list")]
    pub previous_secrets: Vec<String>,
    pub cookie_name: String,
    pub lifetime: String,
    pub secure: bool,
    pub same_site: String,
    pub domain: Option<String>,
    pub path: String,
    pub store: String,
    pub refresh_before: String,
    pub confirm_sign_out: bool,
    pub max_remembered_logouts: usize,
    pub redis: RawRedis,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    #[serde(deserialize_with = "string_like", serialize_with = "redacted_url")]
    pub url: String,
    pub mode: String,
    #[serde(serialize_with = "redacted_urls")]
    pub nodes: Vec<String>,
    pub sentinel_master: String,
    #[serde(deserialize_with = "opt_string_like")]
    pub username: Option<String>,
    #[serde(deserialize_with = "opt_string_like", serialize_with = "redacted")]
    pub password: Option<String>,
    pub password_file: Option<String>,
    pub key_prefix: String,
    pub timeout: String,
}

impl Default for RawRedis {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            mode: "standalone".into(),
            nodes: Vec::new(),
            sentinel_master: "mymaster".into(),
            username: None,
            password: None,
            password_file: None,
            key_prefix: "tollgate:".into(),
            timeout: "2s".into(),
        }
    }
}

impl Default for RawSession {
    fn default() -> Self {
        Self {
            secret: None,
            secret_file: None,
            previous_secrets: Vec::new(),
            cookie_name: "_tollgate".into(),
            lifetime: "12h".into(),
            secure: true,
            same_site: "lax".into(),
            domain: None,
            path: "/".into(),
            store: "cookie".into(),
            refresh_before: "60s".into(),
            confirm_sign_out: true,
            max_remembered_logouts: crate::session::revoked::MAX_ENTRIES,
            redis: RawRedis::default(),
        }
    }
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub level: String,
    pub format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

// === serde helpers ===

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> Self {
        match s {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::UInt(u) => u.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// Accepts a string, or a scalar that figment parsed out of an environment
/// variable, as a string.
fn string_like<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Scalar::deserialize(d).map(String::from)
}

fn opt_string_like<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<Scalar>::deserialize(d).map(|o| o.map(String::from))
}

fn redacted<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("<redacted>"),
        None => s.serialize_none(),
    }
}

/// A Redis URL may carry a password (`redis://:pw@host`): show it masked.
fn mask_url(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.to_string()
        }
        _ => u.to_string(),
    }
}

fn redacted_url<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url(v))
}

fn redacted_urls<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(|u| mask_url(u)))
}

fn redacted_list<S: serde::Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for _ in v {
        seq.serialize_element("<redacted>")?;
    }
    seq.end()
}
