//! What every request shares, assembled once from the configuration: the
//! provider (once discovered), the session store, the upstream client, the
//! header rules and the caches. Handlers borrow it; nothing here routes or
//! answers a request.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::auth::context::{BearerCtx, ClaimMap, LoginCtx, LogoutCtx, ProviderCtx, RefreshCtx};
use crate::auth::redirect::RedirectPolicy;
use crate::auth::verdicts::Introspections;
use crate::authz::Policy;
use crate::config::Config;
use crate::oidc::registry::{Registry, Slot};
use crate::pages::Rejection;
use crate::proxy::assertion::Assertions;
use crate::proxy::forwarded::TrustedProxies;
use crate::proxy::path::PublicRoutes;
use crate::proxy::upstreams::Upstreams;
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
    /// Some rule or public route lists `hosts`: only then is a request's
    /// host worked out (the common configuration pays nothing for it).
    pub judges_hosts: bool,
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
                &redirect_hosts(config),
            )
            .map_err(failed)?,
            judges_hosts: config
                .authorization
                .rules
                .iter()
                .any(|r| !r.hosts.is_empty())
                || config.routes.public.iter().any(|r| !r.hosts.is_empty()),
        })
    }
}

/// `server.allowed_redirect_domains`, and the hosts `[[upstreams]]`
/// serve (on `server.public_url`'s port): a sign-in started there comes
/// back there.
fn redirect_hosts(config: &Config) -> Vec<String> {
    let port = config
        .server
        .public_url
        .port()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let mut hosts = config.server.allowed_redirect_domains.clone();
    hosts.extend(
        config
            .upstreams
            .iter()
            .filter_map(|r| r.host.as_ref())
            .map(|h| format!("{h}{port}")),
    );
    hosts
}

/// Everything a request needs, built once from the config.
pub struct App {
    pub config: Config,
    pub rules: Rules,
    pub sessions: SessionStore,
    pub login_cookies: LoginCookies,
    /// Where each host and path prefix goes, each with its header rules.
    pub upstreams: Upstreams,
    pub trusted: TrustedProxies,
    /// Signs `X-Tollgate-Assertion` (when `upstream.assertion` is on).
    pub assertions: Option<Assertions>,
    /// `[provider]` and `[[providers]]`, discovered or not yet.
    pub providers: Registry,
    pub introspections: Introspections,
    /// `[[authorization.bearer_issuers]]`, discovered on first use.
    pub bearer_issuers: crate::auth::issuers::ExtraIssuers,
    /// Claim paths that rules and `[headers]` read, kept in sessions.
    pub claim_paths: BTreeSet<String>,
    /// `[[upstreams]]` name hosts and `session.domain` is unset: each
    /// listed host keeps its own (host-only) session and signs in through
    /// its own callback.
    pub per_host_sessions: bool,
    shutting_down: AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Provider(#[from] crate::oidc::registry::SlotError),
    #[error(transparent)]
    Upstream(#[from] crate::proxy::UpstreamError),
    #[error(transparent)]
    Assertion(#[from] crate::proxy::assertion::AssertionError),
    /// Cannot happen for a configuration that loaded: it was checked there.
    #[error("the authorization rules do not compile: {0}")]
    Rules(String),
}

impl App {
    pub fn new(config: Config) -> Result<Self, AppError> {
        let rules = Rules::new(&config)?;
        let mut claim_paths = rules.policy.claim_paths();
        claim_paths.extend(config.upstream.claim_headers.iter().map(|(_, c)| c.clone()));
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
            login_cookies: login_cookies(&config),
            providers: Registry::new(&config.providers)?,
            upstreams: Upstreams::new(&config.upstreams, config.upstream.case_insensitive_paths)?,
            trusted: TrustedProxies::new(config.server.trusted_proxies.clone()),
            assertions: match &config.upstream.assertion {
                Some(a) => Some(Assertions::new(
                    a,
                    config.server.public_url.as_str().trim_end_matches('/'),
                )?),
                None => None,
            },
            introspections: Introspections::default(),
            bearer_issuers: crate::auth::issuers::ExtraIssuers::new(&config.bearer.issuers),
            claim_paths,
            per_host_sessions: config.session.domain.is_none()
                && config.upstreams.iter().any(|r| r.host.is_some()),
            shutting_down: AtomicBool::new(false),
            config,
        })
    }

    /// Ready: every provider discovered with its keys, the session store
    /// answering, and not shutting down.
    pub async fn is_ready(&self) -> bool {
        if self.shutting_down.load(Ordering::Relaxed) || !self.providers.all_discovered() {
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
    /// no rediscovery and no reconnection: each provider (by id, when its
    /// issuer and its CA are unchanged; client credentials come from the
    /// new config) and the Redis connection (when `[session.redis]` is
    /// unchanged). Returns what still needs setting up.
    pub fn take_over(&self, old: &App) -> Pending {
        let mut discovery = false;
        for slot in self.providers.iter() {
            discovery |= match old.providers.get(slot.id()) {
                Some(was) => slot.take_over(was),
                None => true,
            };
        }
        let store = match (&self.sessions.backend, &old.sessions.backend) {
            (Backend::Redis(new), Backend::Redis(old)) => !new.adopt(old),
            (Backend::Redis(_), Backend::Cookie) => true,
            _ => false,
        };
        Pending { discovery, store }
    }

    /// The session a request carries; an unreachable store is a 503.
    pub async fn load_session(&self, headers: &http::HeaderMap) -> Result<Loaded, Rejection> {
        crate::auth::handled::load_session(&self.sessions, headers).await
    }

    /// The first provider as handlers use it.
    fn first_provider(&self) -> (ProviderCtx<'_>, ClaimMap<'_>) {
        let slot = self.providers.first();
        (
            ProviderCtx::of(slot),
            ClaimMap::of(&slot.settings, &self.claim_paths),
        )
    }

    /// What login, callback and sign-out borrow.
    pub fn login_ctx(&self) -> LoginCtx<'_> {
        self.login_ctx_at(None)
    }

    /// [`App::login_ctx`] for a sign-in on `host` (the request's, lower
    /// case, no port): with per-host sessions, a listed host other than
    /// the callback's own signs in through its own callback.
    pub fn login_ctx_at<'a>(&'a self, host: Option<&'a str>) -> LoginCtx<'a> {
        let (provider, claims) = self.first_provider();
        let callback_host = host.filter(|h| {
            self.per_host_sessions
                && Some(*h) != provider.settings.redirect_url.host_str()
                && self.upstreams.lists(h)
        });
        LoginCtx {
            provider,
            claims,
            providers: &self.providers,
            redirects: &self.rules.redirects,
            login_cookies: &self.login_cookies,
            sessions: &self.sessions,
            session: &self.config.session,
            callback_host,
        }
    }

    /// What back-channel logout borrows.
    pub fn logout_ctx(&self) -> LogoutCtx<'_> {
        LogoutCtx {
            providers: &self.providers,
            sessions: &self.sessions,
            lifetime: self.config.session.lifetime,
        }
    }

    /// What bearer-token authentication borrows.
    pub fn bearer_ctx(&self) -> BearerCtx<'_> {
        let (provider, claims) = self.first_provider();
        BearerCtx {
            provider,
            settings: &self.config.bearer,
            claims,
            verdicts: &self.introspections,
            issuers: &self.bearer_issuers,
        }
    }

    /// What refreshing a session from `slot` borrows.
    pub fn refresh_ctx<'a>(&'a self, slot: &'a Slot) -> RefreshCtx<'a> {
        RefreshCtx {
            provider: ProviderCtx::of(slot),
            sessions: &self.sessions,
            claims: ClaimMap::of(&slot.settings, &self.claim_paths),
        }
    }
}

/// The login cookies: `Path` of the callback (`/` for a `__Host-` name),
/// and `SameSite=None` when a provider answers by `form_post`.
fn login_cookies(config: &Config) -> LoginCookies {
    let cookies = LoginCookies::new(
        &config.session.cookie_name,
        // `__Host-` cookies must have `Path=/`; otherwise only the
        // callback needs the login cookies.
        if crate::config::is_host_cookie(&config.session.cookie_name) {
            "/"
        } else {
            crate::config::CALLBACK_PATH
        },
        config.session.secure,
    );
    if config.providers.iter().any(|p| p.login.form_post) {
        cookies.for_form_post()
    } else {
        cookies
    }
}

/// What a reloaded instance still has to set up itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub discovery: bool,
    pub store: bool,
}
