//! What every request shares, assembled once from the configuration: the
//! provider (once discovered), the session store, the upstream client, the
//! header rules and the caches. Handlers borrow it; nothing here routes or
//! answers a request.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::auth::context::{BearerCtx, ClaimMap, LoginCtx, LogoutCtx, ProviderCtx, RefreshCtx};
use crate::auth::redirect::RedirectPolicy;
use crate::auth::verdicts::Introspections;
use crate::authz::Policy;
use crate::config::Config;
use crate::oidc::client_auth::ClientKeys;
use crate::oidc::{IdTokenValidator, Provider};
use crate::pages::Rejection;
use crate::proxy::assertion::Assertions;
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::headers::StripList;
use crate::proxy::path::PublicRoutes;
use crate::proxy::Upstream;
use crate::session::login::LoginCookies;
use crate::session::redis::RedisStore;
use crate::session::store::{Backend, Loaded, SessionStore};
use crate::session::{Codec, SessionCookies};

/// Who may go where, compiled from `[authorization]`, `[routes]`,
/// `upstream.case_insensitive_paths` and `server.allowed_redirect_domains`.
pub struct Rules {
    pub policy: Policy,
    pub public: PublicRoutes,
    pub redirects: RedirectPolicy,
}

impl Rules {
    /// Compiles the (already validated) configuration.
    pub fn new(config: &Config) -> Result<Self, AppError> {
        let fold_case = config.upstream.case_insensitive_paths;
        let failed = |e: Vec<(String, String)>| {
            let keys: Vec<String> = e.into_iter().map(|(k, m)| format!("{k}: {m}")).collect();
            AppError::Rules(keys.join("; "))
        };
        Ok(Self {
            policy: Policy::new(&config.authorization, fold_case).map_err(failed)?,
            public: PublicRoutes::new(&config.routes, fold_case).map_err(failed)?,
            redirects: RedirectPolicy::new(
                config.server.public_url.clone(),
                &config.server.allowed_redirect_domains,
            )
            .map_err(failed)?,
        })
    }
}

/// Everything a request needs, built once from the config.
pub struct App {
    pub config: Config,
    pub rules: Rules,
    pub sessions: SessionStore,
    pub login_cookies: LoginCookies,
    pub validator: IdTokenValidator,
    pub upstream: Upstream,
    pub strip: StripList,
    pub trusted: TrustedProxies,
    /// Signs `X-Tollgate-Assertion` (when `upstream.assertion` is on).
    pub assertions: Option<Assertions>,
    /// The `private_key_jwt` keys, published at `/oauth2/client_jwks`.
    pub client_keys: Option<Arc<ClientKeys>>,
    pub introspections: Introspections,
    /// `[[authorization.bearer_issuers]]`, discovered on first use.
    pub bearer_issuers: crate::auth::issuers::ExtraIssuers,
    /// Claim paths that rules and `[headers]` read, kept in sessions.
    pub claim_paths: BTreeSet<String>,
    /// Client for provider calls.
    pub http: reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
    shutting_down: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot build the provider HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error(transparent)]
    Upstream(#[from] crate::proxy::UpstreamError),
    #[error(transparent)]
    Assertion(#[from] crate::proxy::assertion::AssertionError),
    #[error("provider.client_key_file: {0}")]
    ClientKey(#[from] crate::oidc::client_auth::CredentialError),
    /// Cannot happen for a configuration that loaded: it was checked there.
    #[error("the authorization rules do not compile: {0}")]
    Rules(String),
}

impl App {
    pub fn new(config: Config) -> Result<Self, AppError> {
        let roots = match &config.provider.ca_file {
            Some(pem) => reqwest::Certificate::from_pem_bundle(pem)?,
            None => Vec::new(),
        };
        let identity = match &config.provider.tls_client_identity {
            Some(pem) => Some(reqwest::Identity::from_pem(pem.expose())?),
            None => None,
        };
        let http = crate::oidc::http_client(config.provider.timeout, &roots, identity)?;
        let rules = Rules::new(&config)?;
        let mut claim_paths = rules.policy.claim_paths();
        claim_paths.extend(config.upstream.claim_headers.iter().map(|(_, c)| c.clone()));
        let p = &config.provider;
        let validator = IdTokenValidator {
            issuer: match &p.allowed_tenants {
                Some(_) => crate::oidc::preset::entra_issuer_template(&p.issuer)
                    .unwrap_or_else(|| p.issuer.clone()),
                None => p.issuer.clone(),
            },
            tenants: p.allowed_tenants.clone(),
            client_id: p.client_id.clone(),
            algorithms: p.id_token_algorithms.clone(),
            leeway: p.clock_skew,
            max_age: p.id_token_max_age,
            trusted_audiences: p.trusted_audiences.clone(),
            strict_audience: p.strict_audience,
            hmac_secret: p.client_secret.as_ref().map(|s| s.expose().to_vec()),
        };
        crate::session::revoked::REVOKED.set_capacity(config.session.max_remembered_logouts);
        crate::pages::branding::set(config.pages.clone());
        let backend = match &config.session.redis {
            Some(r) => Backend::Redis(Box::new(RedisStore::new(
                r.clone(),
                config.session.lifetime,
            ))),
            None => Backend::Cookie,
        };
        Ok(Self {
            rules,
            sessions: SessionStore {
                cookies: SessionCookies::new(&config.session),
                codec: Codec::new(&config.session.secrets),
                backend,
            },
            login_cookies: {
                let cookies = LoginCookies::new(
                    &config.session.cookie_name,
                    // `__Host-` cookies must have `Path=/`; otherwise only the
                    // callback needs the login cookies.
                    if crate::config::is_host_cookie(&config.session.cookie_name) {
                        "/"
                    } else {
                        config.provider.redirect_url.path()
                    },
                    config.session.secure,
                );
                if config.provider.login.form_post {
                    cookies.for_form_post()
                } else {
                    cookies
                }
            },
            validator,
            upstream: Upstream::new(&config.upstream)?,
            strip: StripList::new(&config.upstream),
            trusted: TrustedProxies::new(config.server.trusted_proxies.clone()),
            assertions: match &config.upstream.assertion {
                Some(a) => Some(Assertions::new(
                    a,
                    config.server.public_url.as_str().trim_end_matches('/'),
                )?),
                None => None,
            },
            client_keys: match &config.provider.client_keys {
                Some((signing, extra)) => Some(Arc::new(ClientKeys::load(signing, extra)?)),
                None => None,
            },
            introspections: Introspections::default(),
            bearer_issuers: crate::auth::issuers::ExtraIssuers::new(&config.bearer.issuers),
            claim_paths,
            http,
            provider: RwLock::new(None),
            shutting_down: AtomicBool::new(false),
            config,
        })
    }

    /// The provider, once discovery has succeeded.
    pub fn provider(&self) -> Option<Arc<Provider>> {
        self.provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_provider(&self, provider: Arc<Provider>) {
        *self.provider.write().unwrap_or_else(|e| e.into_inner()) = Some(provider);
    }

    /// Ready: discovery and keys loaded, the session store answering, and
    /// not shutting down.
    pub async fn is_ready(&self) -> bool {
        if self.shutting_down.load(Ordering::Relaxed) || self.provider().is_none() {
            return false;
        }
        match &self.sessions.backend {
            Backend::Cookie => true,
            Backend::Redis(r) => r.ping().await,
        }
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }

    /// Takes over what a running instance already has, so a reload costs
    /// no rediscovery and no reconnection: the provider (when the issuer and
    /// its CA are unchanged; client credentials come from the new config)
    /// and the Redis connection (when `[session.redis]` is unchanged).
    /// Returns which of the two still need setting up.
    pub fn take_over(&self, old: &App) -> Pending {
        let (was, is) = (&old.config.provider, &self.config.provider);
        // Mutual TLS uses the provider's endpoint aliases: switching to or
        // from it is a new discovery, and so is a change of kind.
        let same_provider = was.issuer == is.issuer
            && was.ca_file == is.ca_file
            && was.timeout == is.timeout
            && was.client_auth.is_mtls() == is.client_auth.is_mtls()
            // GitHub has fixed endpoints, not discovered ones; an Entra ID
            // authority's tenant set changes the issuer discovery expects.
            && was.kind == is.kind
            && was.allowed_tenants.is_some() == is.allowed_tenants.is_some();
        let provider = match old.provider() {
            Some(p) if same_provider => {
                match p.reconfigured(&self.config.provider, self.client_keys.clone(), &self.http) {
                    Ok(p) => self.set_provider(p),
                    // Loaded configs were checked; a provider that refuses
                    // the new method keeps the running instance's.
                    Err(e) => {
                        tracing::warn!(error = %e, "the reloaded provider settings do not fit the provider; keeping the previous ones");
                        self.set_provider(p);
                    }
                }
                false
            }
            _ => true,
        };
        let store = match (&self.sessions.backend, &old.sessions.backend) {
            (Backend::Redis(new), Backend::Redis(old)) => !new.adopt(old),
            (Backend::Redis(_), Backend::Cookie) => true,
            _ => false,
        };
        Pending {
            discovery: provider,
            store,
        }
    }

    /// The session a request carries; an unreachable store is a 503.
    pub async fn load_session(&self, headers: &http::HeaderMap) -> Result<Loaded, Rejection> {
        crate::auth::handled::load_session(&self.sessions, headers).await
    }

    /// The provider as handlers use it.
    pub fn provider_ctx(&self) -> ProviderCtx<'_> {
        ProviderCtx {
            current: self.provider(),
            settings: &self.config.provider,
            validator: &self.validator,
            http: &self.http,
        }
    }

    /// What a session keeps of a set of claims.
    pub fn claim_map(&self) -> ClaimMap<'_> {
        ClaimMap {
            groups_claim: &self.config.provider.groups_claim,
            kind: self.config.provider.kind,
            paths: &self.claim_paths,
        }
    }

    /// What login, callback and sign-out borrow.
    pub fn login_ctx(&self) -> LoginCtx<'_> {
        LoginCtx {
            provider: self.provider_ctx(),
            claims: self.claim_map(),
            redirects: &self.rules.redirects,
            login_cookies: &self.login_cookies,
            sessions: &self.sessions,
            session: &self.config.session,
        }
    }

    /// What back-channel logout borrows.
    pub fn logout_ctx(&self) -> LogoutCtx<'_> {
        LogoutCtx {
            provider: self.provider_ctx(),
            sessions: &self.sessions,
            lifetime: self.config.session.lifetime,
        }
    }

    /// What bearer-token authentication borrows.
    pub fn bearer_ctx(&self) -> BearerCtx<'_> {
        BearerCtx {
            provider: self.provider_ctx(),
            settings: &self.config.bearer,
            claims: self.claim_map(),
            verdicts: &self.introspections,
            issuers: &self.bearer_issuers,
        }
    }

    /// What a refresh borrows.
    pub fn refresh_ctx(&self) -> RefreshCtx<'_> {
        RefreshCtx {
            provider: self.provider_ctx(),
            sessions: &self.sessions,
            claims: self.claim_map(),
        }
    }
}

/// What a reloaded instance still has to set up itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub discovery: bool,
    pub store: bool,
}
