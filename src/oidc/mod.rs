//! OpenID Connect relying-party logic: discovery, JWKS, ID-token validation,
//! the token endpoint, PKCE. Free of hyper types so every rule is testable
//! alone.

pub mod client_auth;
pub mod discovery;
pub mod dpop;
pub mod github;
pub mod graph;
pub mod id_token;
pub mod jwks;
pub mod jws;
pub mod logout_token;
pub mod pkce;
pub mod preset;
pub mod registry;
pub mod settings;
pub mod token;
pub mod userinfo;

use std::sync::Arc;
use std::time::Duration;

use client_auth::{ClientAuthenticator, ClientKeys};
use settings::ProviderConfig;

pub use discovery::ProviderMetadata;
pub use id_token::{IdTokenClaims, IdTokenError, IdTokenValidator};
pub use jwks::KeyCache;
pub use token::{TokenClient, TokenError, TokenResponse};

/// Everything learned from the provider at start-up.
#[derive(Debug)]
pub struct Provider {
    pub metadata: ProviderMetadata,
    /// Shared with the provider built for a reloaded config.
    pub keys: Arc<KeyCache>,
    pub tokens: TokenClient,
    /// Where authorization requests are pushed (RFC 9126), when they are.
    pub push_endpoint: Option<url::Url>,
    /// GitHub: no discovery, no keys, no ID tokens; the user from its API.
    pub github: Option<github::Github>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    #[error(transparent)]
    Keys(#[from] jwks::JwksError),
    #[error("DPoP key: {0}")]
    Dpop(#[from] client_auth::CredentialError),
}

impl Provider {
    /// Discovers the provider and loads its keys. `client_keys`: the
    /// loaded `private_key_jwt` keys, when that is the method.
    pub async fn discover(
        config: &ProviderConfig,
        client_keys: Option<Arc<ClientKeys>>,
        http: &reqwest::Client,
    ) -> Result<Arc<Self>, ProviderError> {
        if config.kind == preset::ProviderKind::Github {
            return Self::github(config, client_keys, http);
        }
        let expected = match &config.allowed_tenants {
            Some(_) => preset::entra_issuer_template(&config.issuer)
                .unwrap_or_else(|| config.issuer.clone()),
            None => config.issuer.clone(),
        };
        let mut metadata = discovery::fetch(http, &config.issuer, &expected).await?;
        if config.client_auth.is_mtls() {
            metadata.use_mtls_aliases();
        }
        discovery::check_algorithms(&metadata, &config.id_token_algorithms)?;
        let keys = Arc::new(KeyCache::new(http.clone(), metadata.jwks_uri.clone()));
        keys.refresh().await?;
        let found = Found {
            metadata,
            keys,
            github: None,
        };
        Self::assemble(found, config, client_keys, None, http)
    }

    /// GitHub's fixed endpoints in place of discovery.
    fn github(
        config: &ProviderConfig,
        client_keys: Option<Arc<ClientKeys>>,
        http: &reqwest::Client,
    ) -> Result<Arc<Self>, ProviderError> {
        let base = url::Url::parse(&config.issuer)
            .map_err(|_| discovery::DiscoveryError::NotAUrl(config.issuer.clone()))?;
        let gh = github::Github::new(&base);
        let (Some(authorize), Some(token)) = (gh.authorize_url(), gh.token_url()) else {
            return Err(discovery::DiscoveryError::NotAUrl(config.issuer.clone()).into());
        };
        let metadata = ProviderMetadata::fixed(config.issuer.clone(), authorize, token);
        // No keys: nothing GitHub sends is a JWT to verify.
        let keys = Arc::new(KeyCache::new(http.clone(), metadata.jwks_uri.clone()));
        let found = Found {
            metadata,
            keys,
            github: Some(gh),
        };
        Self::assemble(found, config, client_keys, None, http)
    }

    /// The DPoP key: the configured one, else the running one (a reload
    /// keeps it: tokens are bound to it), else a fresh one.
    fn dpop_key(
        config: &ProviderConfig,
        running: Option<&Arc<dpop::DpopKey>>,
    ) -> Result<Option<Arc<dpop::DpopKey>>, ProviderError> {
        if !config.dpop {
            return Ok(None);
        }
        if let (None, Some(k)) = (&config.dpop_key, running) {
            return Ok(Some(k.clone()));
        }
        Ok(Some(Arc::new(dpop::DpopKey::new(
            config.dpop_key.as_ref(),
        )?)))
    }

    /// The provider under `config`: every check of the configuration
    /// against what was found (method, FAPI 2.0, DPoP, PAR) happens here,
    /// at discovery and at each reload alike.
    fn assemble(
        found: Found,
        config: &ProviderConfig,
        client_keys: Option<Arc<ClientKeys>>,
        running_dpop: Option<&Arc<dpop::DpopKey>>,
        http: &reqwest::Client,
    ) -> Result<Arc<Self>, ProviderError> {
        let Found {
            metadata,
            keys,
            github,
        } = found;
        if github.is_none() {
            discovery::check_client_auth(&metadata, config.client_auth)?;
        }
        if config.fapi2 {
            discovery::check_fapi2(&metadata)?;
        }
        let dpop = Self::dpop_key(config, running_dpop)?;
        discovery::check_dpop(&metadata, dpop.as_ref().map(|k| k.algorithm()))?;
        let push_endpoint = discovery::push_endpoint(&metadata, config.pushed_authorization)?;
        let auth = ClientAuthenticator::new(
            config,
            client_keys,
            &metadata.issuer,
            &metadata.token_endpoint,
        );
        let mut tokens = TokenClient::new(
            http.clone(),
            metadata.token_endpoint.clone(),
            auth,
            dpop,
            config.max_concurrent_calls,
        );
        // GitHub answers refusals with 200 and an error body.
        tokens.errors_with_200 = github.is_some();
        Ok(Arc::new(Self {
            metadata,
            keys,
            tokens,
            push_endpoint,
            github,
        }))
    }

    /// The same provider under a reloaded configuration: metadata, keys
    /// and the DPoP key kept, the client credentials (a rotated secret or
    /// key) and the PAR choice taken from `config`, checked again.
    pub fn reconfigured(
        &self,
        config: &ProviderConfig,
        client_keys: Option<Arc<ClientKeys>>,
        http: &reqwest::Client,
    ) -> Result<Arc<Self>, ProviderError> {
        let found = Found {
            metadata: self.metadata.clone(),
            keys: self.keys.clone(),
            github: self.github.clone(),
        };
        Self::assemble(found, config, client_keys, self.tokens.dpop.as_ref(), http)
    }
}

/// What discovery (or GitHub's fixed endpoints) found.
struct Found {
    metadata: ProviderMetadata,
    keys: Arc<KeyCache>,
    github: Option<github::Github>,
}

/// The HTTP client used for every provider call: no redirects (a token
/// endpoint that redirects is misconfigured or hostile), bounded time, rustls.
/// `extra_roots`: PEM certificates of a private CA the provider's
/// certificate chains to, trusted in addition to the system's.
/// `identity`: the certificate and key of mutual-TLS client
/// authentication (RFC 8705), presented on every provider connection.
pub fn http_client(
    timeout: Duration,
    extra_roots: &[reqwest::Certificate],
    identity: Option<reqwest::Identity>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .timeout(timeout)
        .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")));
    for c in extra_roots {
        b = b.add_root_certificate(c.clone());
    }
    if let Some(id) = identity {
        b = b.identity(id);
    }
    b.build()
}

/// Why a provider document (discovery, JWKS) could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch {url}: {source}")]
    Fetch { url: String, source: reqwest::Error },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// GETs a JSON document from the provider: its body, at most
/// [`MAX_RESPONSE_BYTES`], when the answer is a success.
pub(crate) async fn get_document(
    http: &reqwest::Client,
    url: &url::Url,
) -> Result<Vec<u8>, FetchError> {
    let fetch = |source| FetchError::Fetch {
        url: url.to_string(),
        source,
    };
    let resp = http
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(fetch)?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.to_string(),
            status: resp.status().as_u16(),
        });
    }
    read_limited(resp).await.map_err(fetch)
}

/// Largest provider response body read (discovery, JWKS, token, userinfo).
pub const MAX_RESPONSE_BYTES: usize = 1 << 20;

/// Reads a response body up to [`MAX_RESPONSE_BYTES`].
pub(crate) async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Fresh random bytes from the system CSPRNG, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    // aws-lc's RNG only fails when the OS has no entropy source at all, in
    // which case no login can be safe: fail loudly rather than weakly.
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::fill(&mut buf).expect("system random number generator failed");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Constant-time string equality (state, nonce, issuer-bound values).
pub fn ct_eq(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}
