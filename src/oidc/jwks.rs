//! The provider's signing keys (RFC 7517), cached, and refetched when a token
//! names a `kid` we do not know. Who asks decides how ([`Refetch`]): an ID
//! token that came straight from the token endpoint always gets its refetch
//! (one fetch for every token waiting), while tokens anyone can send (bearer,
//! logout) share a budget of their own, one refetch per
//! [`MIN_REFETCH_INTERVAL`], so a flood of made-up `kid`s can neither hammer
//! the provider nor hold back logins after a real key rotation. Scheduled
//! fetches count against neither.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use url::Url;

/// Shortest time between two JWKS fetches triggered by unknown keys.
pub const MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(10);
/// Most keys tried for one token without a `kid` (OIDC Core §10.1 wants a
/// `kid` whenever there are several keys; a set of many keys without one is
/// not searched exhaustively).
pub const MAX_CANDIDATES: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS: {0}")]
    Get(#[from] super::FetchError),
    #[error("JWKS {url} is not a JSON key set: {source}")]
    Parse {
        url: String,
        source: serde_json::Error,
    },
}

/// A parsed key set: keys we cannot use (unknown `kty`, encryption keys) are
/// skipped rather than failing the whole set.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

impl KeySet {
    pub fn parse(body: &[u8]) -> Result<Self, serde_json::Error> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body)?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
            .filter(|k| {
                !matches!(
                    k.common.public_key_use,
                    Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
                        | Some(jsonwebtoken::jwk::PublicKeyUse::Other(_))
                )
            })
            // RFC 7517 §4.3: a key whose operations are listed must list
            // `verify` to verify.
            .filter(|k| {
                k.common.key_operations.as_ref().is_none_or(|ops| {
                    ops.iter()
                        .any(|o| matches!(o, jsonwebtoken::jwk::KeyOperations::Verify))
                })
            })
            .collect();
        Ok(Self { keys })
    }

    /// Keys that could have produced a signature with `alg` and `kid`: the
    /// key with that `kid` when one is named, otherwise every key of the
    /// algorithm's family (OIDC Core §10.1: with no `kid`, try the candidates).
    pub fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<DecodingKey> {
        self.keys
            .iter()
            .filter(|k| match kid {
                Some(kid) => k.common.key_id.as_deref() == Some(kid),
                None => true,
            })
            .filter(|k| compatible(k, alg))
            .filter_map(|k| DecodingKey::from_jwk(k).ok())
            .take(MAX_CANDIDATES)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// A key may verify `alg` when its type matches the algorithm family and its
/// own `alg`, if it names one, is that algorithm.
fn compatible(k: &Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    if let Some(key_alg) = k.common.key_algorithm {
        if key_alg != jsonwebtoken::jwk::KeyAlgorithm::from(alg) {
            return false;
        }
    }
    match (&k.algorithm, alg) {
        (
            P::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (P::EllipticCurve(p), Algorithm::ES256) => {
            p.curve == jsonwebtoken::jwk::EllipticCurve::P256
        }
        (P::EllipticCurve(p), Algorithm::ES384) => {
            p.curve == jsonwebtoken::jwk::EllipticCurve::P384
        }
        (P::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == jsonwebtoken::jwk::EllipticCurve::Ed25519
        }
        _ => false,
    }
}

/// Who asks for a key the cached set does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refetch {
    /// An ID token from the token endpoint (login, refresh), received over
    /// TLS from the provider itself: an unknown `kid` means the provider
    /// rotated its keys, so the set is always fetched again, once for all
    /// the tokens waiting on it.
    Always,
    /// A token any client can send (bearer, logout): at most one refetch
    /// per [`MIN_REFETCH_INTERVAL`], on a budget separate from `Always`.
    Throttled,
}

/// The cached key set of one provider.
#[derive(Debug)]
pub struct KeyCache {
    http: reqwest::Client,
    uri: Url,
    set: RwLock<Arc<KeySet>>,
    /// Serialises fetches: one at a time, and tokens that waited for one
    /// use its result instead of fetching again.
    fetching: tokio::sync::Mutex<()>,
    /// Fetches completed so far (successful or not).
    fetches: AtomicU64,
    /// When the last [`Refetch::Throttled`] refetch began.
    last_throttled: Mutex<Option<Instant>>,
    /// Built by [`KeyCache::fixed`]: never fetches.
    fixed: bool,
}

impl KeyCache {
    pub fn new(http: reqwest::Client, uri: Url) -> Self {
        Self {
            http,
            uri,
            set: RwLock::new(Arc::new(KeySet::default())),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
            last_throttled: Mutex::new(None),
            fixed: false,
        }
    }

    /// A cache holding a fixed key set (tests and benchmarks); it never
    /// fetches.
    pub fn fixed(set: KeySet) -> Self {
        let mut cache = Self::new(
            reqwest::Client::new(),
            Url::parse("http://127.0.0.1:9/jwks").unwrap_or_else(|_| unreachable!()),
        );
        *cache.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        cache.fixed = true;
        cache
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.set.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetches the key set now.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _serialised = self.fetching.lock().await;
        self.fetch_timed().await
    }

    async fn fetch_timed(&self) -> Result<(), JwksError> {
        let started = Instant::now();
        let result = self.fetch_once().await;
        self.fetches.fetch_add(1, Ordering::SeqCst);
        crate::telemetry::metrics::metrics().observe_provider("jwks", started.elapsed());
        result
    }

    async fn fetch_once(&self) -> Result<(), JwksError> {
        let url = self.uri.to_string();
        let body = super::get_document(&self.http, &self.uri).await?;
        let set = KeySet::parse(&body).map_err(|source| JwksError::Parse { url, source })?;
        tracing::debug!(keys = set.len(), "loaded provider signing keys");
        *self.set.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
        Ok(())
    }

    /// Candidate keys for a token; when none match, refetches the set as
    /// `refetch` allows.
    pub async fn keys_for(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        refetch: Refetch,
    ) -> Vec<DecodingKey> {
        let seen = self.fetches.load(Ordering::SeqCst);
        let found = self.current().candidates(alg, kid);
        if !found.is_empty() || self.fixed {
            return found;
        }
        if refetch == Refetch::Throttled && !self.throttled_refetch_due() {
            return Vec::new();
        }
        self.refetch_unless_done_since(seen).await;
        self.current().candidates(alg, kid)
    }

    /// How many fetches have completed: pass it to
    /// [`KeyCache::refetch_unless_done_since`].
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Fetches the set again, unless a fetch completed since the count
    /// was `seen` (then that one is the fetch wanted: tokens waiting on the
    /// same rotation share one).
    pub async fn refetch_unless_done_since(&self, seen: u64) {
        if self.fixed {
            return;
        }
        let _serialised = self.fetching.lock().await;
        if self.fetches.load(Ordering::SeqCst) == seen {
            if let Err(e) = self.fetch_timed().await {
                tracing::warn!(error = %e, "refetching provider keys failed");
            }
        }
    }

    /// Takes the throttled budget's refetch if one is due.
    fn throttled_refetch_due(&self) -> bool {
        let mut last = self
            .last_throttled
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < MIN_REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}
