//! The configured providers at run time, by `id`: for each, the runtime
//! parts its settings call for (HTTP client, ID-token validator, client
//! keys) and, once discovery has succeeded, the [`Provider`].

use std::sync::{Arc, RwLock};

use super::client_auth::{ClientKeys, CredentialError};
use super::settings::ProviderConfig;
use super::{IdTokenValidator, Provider};

/// Why a provider's runtime parts could not be built (the configuration
/// was checked when it loaded, so only I/O and TLS material fail here).
#[derive(Debug, thiserror::Error)]
pub enum SlotError {
    #[error("provider `{0}`: cannot build its HTTP client: {1}")]
    Http(String, reqwest::Error),
    #[error("provider `{0}`: client_key_file: {1}")]
    ClientKey(String, CredentialError),
    #[error("no provider is configured")]
    Empty,
}

/// One provider.
pub struct Slot {
    pub settings: ProviderConfig,
    pub validator: IdTokenValidator,
    /// The client for this provider's endpoints (its CA, its mutual-TLS
    /// identity, its timeout).
    pub http: reqwest::Client,
    /// The `private_key_jwt` keys, when that is the method.
    pub client_keys: Option<Arc<ClientKeys>>,
    current: RwLock<Option<Arc<Provider>>>,
}

impl Slot {
    fn new(settings: &ProviderConfig) -> Result<Self, SlotError> {
        let id = || settings.id.clone();
        let roots = match &settings.ca_file {
            Some(pem) => {
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| SlotError::Http(id(), e))?
            }
            None => Vec::new(),
        };
        let identity = match &settings.tls_client_identity {
            Some(pem) => Some(
                reqwest::Identity::from_pem(pem.expose()).map_err(|e| SlotError::Http(id(), e))?,
            ),
            None => None,
        };
        let http = super::http_client(settings.timeout, &roots, identity)
            .map_err(|e| SlotError::Http(id(), e))?;
        let client_keys = match &settings.client_keys {
            Some((signing, extra)) => Some(Arc::new(
                ClientKeys::load(signing, extra).map_err(|e| SlotError::ClientKey(id(), e))?,
            )),
            None => None,
        };
        Ok(Self {
            validator: validator(settings),
            settings: settings.clone(),
            http,
            client_keys,
            current: RwLock::new(None),
        })
    }

    pub fn id(&self) -> &str {
        &self.settings.id
    }

    /// What discovery found; `None` until it has succeeded.
    pub fn current(&self) -> Option<Arc<Provider>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_current(&self, provider: Arc<Provider>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(provider);
    }

    /// Takes over what `old` (the same provider in the running instance)
    /// discovered, with client credentials from the new settings. Returns
    /// whether this provider still needs discovering.
    pub fn take_over(&self, old: &Slot) -> bool {
        let (was, is) = (&old.settings, &self.settings);
        // Mutual TLS uses the provider's endpoint aliases: switching to or
        // from it is a new discovery, and so is a change of kind (GitHub
        // has fixed endpoints) or of Entra ID's tenant set (it changes the
        // issuer discovery expects).
        let same = was.issuer == is.issuer
            && was.ca_file == is.ca_file
            && was.timeout == is.timeout
            && was.client_auth.is_mtls() == is.client_auth.is_mtls()
            && was.kind == is.kind
            && was.allowed_tenants.is_some() == is.allowed_tenants.is_some();
        let Some(p) = old.current().filter(|_| same) else {
            return true;
        };
        match p.reconfigured(is, self.client_keys.clone(), &self.http) {
            Ok(p) => self.set_current(p),
            // Loaded configs were checked; a provider that refuses the new
            // method keeps the running instance's.
            Err(e) => {
                tracing::warn!(provider = %is.id, error = %e, "the reloaded provider settings do not fit the provider; keeping the previous ones");
                self.set_current(p);
            }
        }
        false
    }
}

/// The ID-token checks a provider's settings call for.
fn validator(p: &ProviderConfig) -> IdTokenValidator {
    IdTokenValidator {
        issuer: match &p.allowed_tenants {
            Some(_) => {
                super::preset::entra_issuer_template(&p.issuer).unwrap_or_else(|| p.issuer.clone())
            }
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
    }
}

/// Every configured provider, in configuration order; never empty. Slots
/// are shared so that a provider's background work (discovery, key
/// refresh) holds its slot only, not the application a reload replaces.
pub struct Registry {
    slots: Vec<Arc<Slot>>,
}

impl Registry {
    /// `settings` is the validated, non-empty provider list.
    pub fn new(settings: &[ProviderConfig]) -> Result<Self, SlotError> {
        if settings.is_empty() {
            return Err(SlotError::Empty);
        }
        Ok(Self {
            slots: settings
                .iter()
                .map(|s| Slot::new(s).map(Arc::new))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The first provider: the one bearer tokens are checked against.
    pub fn first(&self) -> &Slot {
        // `new` refuses an empty list.
        &self.slots[0]
    }

    pub fn get(&self, id: &str) -> Option<&Slot> {
        self.slots.iter().find(|s| s.id() == id).map(|s| &**s)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Slot> {
        self.slots.iter().map(|s| &**s)
    }

    /// The slots, shared, for background work.
    pub fn shared(&self) -> impl Iterator<Item = &Arc<Slot>> {
        self.slots.iter()
    }

    /// The provider a token's (unverified) `iss` names; the only one when
    /// there is one. Its keys and validator then judge the token.
    pub fn by_issuer(&self, iss: Option<&str>) -> Option<&Slot> {
        if let [only] = self.slots.as_slice() {
            return Some(&**only);
        }
        let iss = iss?;
        self.iter().find(|s| {
            let template = &s.validator.issuer;
            match template.split_once("{tenantid}") {
                Some((head, tail)) if s.settings.allowed_tenants.is_some() => {
                    iss.len() > head.len() + tail.len()
                        && iss.starts_with(head)
                        && iss.ends_with(tail)
                }
                _ => template == iss,
            }
        })
    }

    /// The providers a browser signing in for `host` may choose from: the
    /// one that lists the host (exactly, else by its `*.` pattern), or
    /// else those that list no host (all, when every one lists some).
    pub fn offered(&self, host: &str) -> Vec<&Slot> {
        use crate::proxy::host::host_matches;
        let host = host.to_ascii_lowercase();
        // An exact entry wins over a `*.` one.
        let listed = |exact: bool| {
            self.iter().find(|s| {
                s.settings
                    .hosts
                    .iter()
                    .any(|p| p.starts_with("*.") != exact && host_matches(p, &host))
            })
        };
        if let Some(s) = listed(true).or_else(|| listed(false)) {
            return vec![s];
        }
        let unbound: Vec<&Slot> = self
            .iter()
            .filter(|s| s.settings.hosts.is_empty())
            .collect();
        if unbound.is_empty() {
            self.iter().collect()
        } else {
            unbound
        }
    }

    /// Whether a browser must choose a provider.
    pub fn several(&self) -> bool {
        self.slots.len() > 1
    }

    /// Whether every provider has been discovered.
    pub fn all_discovered(&self) -> bool {
        self.slots.iter().all(|s| s.current().is_some())
    }

    /// The public keys of every provider's `private_key_jwt` keys, as one
    /// JWK Set; `None` when no provider has any.
    pub fn client_jwks(&self) -> Option<serde_json::Value> {
        let mut keys: Vec<serde_json::Value> = Vec::new();
        let mut any = false;
        for k in self.slots.iter().filter_map(|s| s.client_keys.as_ref()) {
            any = true;
            let set = k.jwks();
            for key in set["keys"].as_array().into_iter().flatten() {
                if !keys.contains(key) {
                    keys.push(key.clone());
                }
            }
        }
        any.then(|| serde_json::json!({ "keys": keys }))
    }
}
