//! The narrow state each handler borrows, never the whole application: the
//! gateway builds these from what requests share (`gateway::state`) and
//! passes each handler only its own.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::redirect::RedirectPolicy;
use super::settings::BearerConfig;
use super::verdicts::Introspections;
use crate::oidc::registry::{Registry, Slot};
use crate::oidc::settings::ProviderConfig;
use crate::oidc::{IdTokenClaims, IdTokenValidator, Provider};
use crate::session::login::LoginCookies;
use crate::session::settings::SessionConfig;
use crate::session::store::SessionStore;

/// The identity provider as handlers use it.
#[derive(Clone)]
pub struct ProviderCtx<'a> {
    /// What discovery found; `None` until it has succeeded.
    pub current: Option<Arc<Provider>>,
    pub settings: &'a ProviderConfig,
    pub validator: &'a IdTokenValidator,
    /// The client for provider calls.
    pub http: &'a reqwest::Client,
}

impl<'a> ProviderCtx<'a> {
    pub fn of(slot: &'a Slot) -> Self {
        Self {
            current: slot.current(),
            settings: &slot.settings,
            validator: &slot.validator,
            http: &slot.http,
        }
    }
}

/// What a session keeps of a set of claims.
#[derive(Clone, Copy)]
pub struct ClaimMap<'a> {
    /// `provider.groups_claim`.
    pub groups_claim: &'a str,
    /// `provider.kind`: where else groups come from.
    pub kind: crate::oidc::preset::ProviderKind,
    /// The claim paths rules and `[headers]` read.
    pub paths: &'a BTreeSet<String>,
}

impl<'a> ClaimMap<'a> {
    /// What a session from `provider` keeps.
    pub fn of(provider: &'a ProviderConfig, paths: &'a BTreeSet<String>) -> Self {
        Self {
            groups_claim: &provider.groups_claim,
            kind: provider.kind,
            paths,
        }
    }

    /// The claims a session keeps, by claim path.
    pub fn stored(&self, claims: &IdTokenClaims) -> Map<String, Value> {
        self.paths
            .iter()
            .filter_map(|p| Some((p.clone(), claims.claim_value(p)?)))
            .collect()
    }
}

/// Login, callback and sign-out: the browser-facing session endpoints.
/// `provider` and `claims` are those of the provider at hand: the first
/// until a login link, a login state or a session names another.
#[derive(Clone)]
pub struct LoginCtx<'a> {
    pub provider: ProviderCtx<'a>,
    pub claims: ClaimMap<'a>,
    /// Every provider, to find the one a login or a session names.
    pub providers: &'a Registry,
    pub redirects: &'a RedirectPolicy,
    pub login_cookies: &'a LoginCookies,
    pub sessions: &'a SessionStore,
    pub session: &'a SessionConfig,
    /// With per-host sessions (`[[upstreams]]` without `session.domain`):
    /// the listed host this sign-in happens on, whose own callback the
    /// provider returns to. `None`: the provider's `redirect_url`.
    pub callback_host: Option<&'a str>,
}

impl<'a> LoginCtx<'a> {
    /// The redirect URI of this sign-in: the provider's `redirect_url`,
    /// on `callback_host` when there is one.
    pub fn redirect_uri(&self) -> std::borrow::Cow<'_, str> {
        let configured = &self.provider.settings.redirect_url;
        match self.callback_host {
            Some(host) => {
                let mut url = configured.clone();
                match url.set_host(Some(host)) {
                    Ok(()) => std::borrow::Cow::Owned(url.into()),
                    Err(_) => std::borrow::Cow::Borrowed(configured.as_str()),
                }
            }
            None => std::borrow::Cow::Borrowed(configured.as_str()),
        }
    }

    /// The same context, for the provider with this `id`.
    pub fn for_provider(&self, id: &str) -> Option<LoginCtx<'a>> {
        let slot = self.providers.get(id)?;
        Some(LoginCtx {
            provider: ProviderCtx::of(slot),
            claims: ClaimMap::of(&slot.settings, self.claims.paths),
            ..self.clone()
        })
    }
}

/// Back-channel logout.
pub struct LogoutCtx<'a> {
    /// Every provider: the logout token's issuer says which one speaks.
    pub providers: &'a Registry,
    pub sessions: &'a SessionStore,
    /// `session.lifetime`: how long a logout must be remembered.
    pub lifetime: Duration,
}

/// Bearer tokens from API clients.
pub struct BearerCtx<'a> {
    pub provider: ProviderCtx<'a>,
    pub settings: &'a BearerConfig,
    pub claims: ClaimMap<'a>,
    pub verdicts: &'a Introspections,
    /// Issuers besides the provider.
    pub issuers: &'a super::issuers::ExtraIssuers,
}

/// Refreshing a session's access token.
pub struct RefreshCtx<'a> {
    pub provider: ProviderCtx<'a>,
    pub sessions: &'a SessionStore,
    pub claims: ClaimMap<'a>,
}
