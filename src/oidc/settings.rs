//! `[provider]` as the loader validated it.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use url::Url;

use crate::secret::Secret;

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
