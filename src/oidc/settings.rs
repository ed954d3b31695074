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
    /// A JWT assertion signed HS256 with the client secret (RFC 7523 §2.2).
    ClientSecretJwt,
    /// A JWT assertion signed with `provider.client_key_file`.
    PrivateKeyJwt,
    /// An assertion written to `provider.client_assertion_file` by someone
    /// else (workload identity).
    ClientAssertionFile,
    /// Mutual TLS with a certificate from a CA the provider trusts
    /// (RFC 8705 §2.1).
    TlsClientAuth,
    /// Mutual TLS with a self-signed certificate registered at the
    /// provider (RFC 8705 §2.2).
    SelfSignedTlsClientAuth,
    /// Public client: no secret, PKCE only.
    None,
}

impl ClientAuth {
    /// Whether the client proves itself with its TLS certificate.
    pub fn is_mtls(self) -> bool {
        matches!(
            self,
            ClientAuth::TlsClientAuth | ClientAuth::SelfSignedTlsClientAuth
        )
    }

    /// The name discovery's `token_endpoint_auth_methods_supported` uses.
    pub fn method(self) -> &'static str {
        match self {
            ClientAuth::ClientSecretBasic => "client_secret_basic",
            ClientAuth::ClientSecretPost => "client_secret_post",
            ClientAuth::ClientSecretJwt => "client_secret_jwt",
            // A file assertion is a JWT bearer assertion like any other.
            ClientAuth::PrivateKeyJwt | ClientAuth::ClientAssertionFile => "private_key_jwt",
            ClientAuth::TlsClientAuth => "tls_client_auth",
            ClientAuth::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            ClientAuth::None => "none",
        }
    }
}

/// A PEM private key file as configured (checked when the config loads).
#[derive(Clone)]
pub struct ClientKeyConfig {
    /// The path, for messages.
    pub file: String,
    pub pem: Secret,
    /// `None`: the key type's usual algorithm.
    pub algorithm: Option<Algorithm>,
    /// `None`: the RFC 7638 thumbprint.
    pub kid: Option<String>,
    /// DER of the key's X.509 certificate, when one is configured: its
    /// thumbprints go in the assertion header (`x5t`, `x5t#S256`), as
    /// Microsoft Entra ID requires for certificate credentials.
    pub certificate: Option<Vec<u8>>,
}

/// `provider.prompt`, `max_age`, `acr_values` and the static extra
/// parameters (OIDC Core §3.1.2.1).
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    pub prompt: Option<String>,
    /// Sent as `max_age`; the ID token must then carry an `auth_time`
    /// no older than this (plus the clock skew).
    pub max_age: Option<Duration>,
    /// Sent as `acr_values`; the ID token's `acr` must be one of them.
    pub acr_values: Vec<String>,
    pub extra: Vec<(String, String)>,
    /// `response_mode=form_post`: the provider POSTs the answer to the
    /// callback.
    pub form_post: bool,
}

/// `aud` of the assertions tollgate signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The token endpoint, whatever endpoint is called (RFC 7523 §3).
    TokenEndpoint,
    /// The URL of the endpoint being called (Okta's rule).
    Endpoint,
    /// The issuer identifier.
    Issuer,
    Url(String),
}

#[derive(Clone)]
pub struct ProviderConfig {
    /// `provider.id`: recorded in sessions and login states, named by
    /// `/oauth2/start?provider=` and `allow_providers`.
    pub id: String,
    /// `provider.name`: what the sign-in chooser shows.
    pub name: String,
    /// `provider.hosts`, lower-case: a browser signing in for one of these
    /// hosts goes to this provider without a choice. `*.example.com`
    /// matches one label before `.example.com`.
    pub hosts: Vec<String>,
    /// `provider.kind`: what the provider needs beyond generic OIDC.
    pub kind: super::preset::ProviderKind,
    /// Google: the hosted domains (`hd`) a user must belong to.
    pub hosted_domains: Vec<String>,
    /// Entra ID with a multi-tenant authority: the tenants (`tid`) whose
    /// users may sign in; `["*"]` any. `None`: one tenant, exact issuer.
    pub allowed_tenants: Option<Vec<String>>,
    /// Entra ID: Microsoft Graph, for group overage.
    pub graph_url: Url,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub client_auth: ClientAuth,
    /// `private_key_jwt`: the signing key, then keys only published.
    pub client_keys: Option<(ClientKeyConfig, Vec<ClientKeyConfig>)>,
    /// PEM certificate chain and private key presented to the provider by
    /// mutual TLS (`tls_client_auth`, `self_signed_tls_client_auth`).
    pub tls_client_identity: Option<Secret>,
    /// `client_assertion_file`: where the assertion is read from.
    pub client_assertion_file: Option<std::path::PathBuf>,
    pub client_assertion_audience: AssertionAudience,
    /// Push every authorization request (RFC 9126), not only when the
    /// provider requires it.
    pub pushed_authorization: bool,
    /// `provider.profile = "fapi2"`: the FAPI 2.0 Security Profile, whose
    /// provider-side requirements are checked at discovery.
    pub fapi2: bool,
    /// DPoP (RFC 9449) on token, PAR and userinfo requests.
    pub dpop: bool,
    /// The DPoP key shared by every replica; `None`: one per process.
    pub dpop_key: Option<ClientKeyConfig>,
    /// Login options sent on every authorization request.
    pub login: LoginOptions,
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
    /// Most authenticated calls to the provider in flight at once, per
    /// replica; more are refused at once.
    pub max_concurrent_calls: usize,
    /// PEM bytes of extra trusted roots for the provider (`provider.ca_file`).
    pub ca_file: Option<Vec<u8>>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("client_auth", &self.client_auth)
            .field("scopes", &self.scopes)
            .field("redirect_url", &self.redirect_url.as_str())
            .finish_non_exhaustive()
    }
}
