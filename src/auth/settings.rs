//! `[authorization]`'s bearer-token settings, as the loader validated them.

use jsonwebtoken::Algorithm;

/// Bearer-token access for machine clients.
#[derive(Debug, Clone, Default)]
pub struct BearerConfig {
    /// JWT access tokens must name one of these in `aud`.
    pub audiences: Vec<String>,
    /// Algorithms JWT access tokens may be signed with; never HS*.
    pub algorithms: Vec<Algorithm>,
    /// Opaque tokens are checked at the introspection endpoint.
    pub introspection: bool,
    /// Other issuers whose JWT access tokens are accepted.
    pub issuers: Vec<BearerIssuer>,
}

/// An issuer besides the provider, and the audiences its tokens must name.
#[derive(Debug, Clone)]
pub struct BearerIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
}

impl BearerConfig {
    pub fn enabled(&self) -> bool {
        !self.audiences.is_empty() || self.introspection || !self.issuers.is_empty()
    }
}
