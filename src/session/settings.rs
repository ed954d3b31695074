//! `[session]` and `[session.redis]` as the loader validated them.

use std::fmt;
use std::time::Duration;

use crate::secret::Secret;

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

/// Minimum session key material, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
