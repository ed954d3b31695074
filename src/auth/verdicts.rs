//! Verdicts on bearer tokens, cached by the token's SHA-256, so a
//! client's every request does not pay for a signature check or an
//! introspection call again. A leaf: the application state holds the cache,
//! `bearer` fills it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::session::Session;

/// Longest a verdict on a token (signature check or introspection answer)
/// is reused; never past the token's own expiry.
pub const INTROSPECTION_CACHE: Duration = Duration::from_secs(30);
/// Most cached verdicts of each kind (accepted, refused).
const CACHE_CAP: usize = 10_000;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BearerError {
    #[error("invalid bearer token: {0}")]
    Invalid(String),
    /// No provider key matches the token's `kid` (yet): refused, but not
    /// remembered, since the next refetch may bring the key.
    #[error("invalid bearer token: {0}")]
    UnknownKey(String),
    #[error("the provider could not check the token")]
    Unavailable,
}

pub type Key = [u8; 32];

/// Verdicts on bearer tokens, by the token's SHA-256, in two separate
/// spaces so that a flood of made-up tokens can never push out a good one.
#[derive(Default)]
pub struct Introspections {
    /// Tokens that passed, until the earlier of [`INTROSPECTION_CACHE`] and
    /// their expiry. Only real tokens get here, so its size follows the
    /// number of live API clients; when full, expired entries go first,
    /// then the one closest to expiry.
    accepted: Mutex<HashMap<Key, (Instant, Session)>>,
    /// Tokens refused for what they say (bad signature, audience, expiry,
    /// inactive). Anyone can fill this space; when full it starts over,
    /// which costs a recomputation and never a good verdict.
    refused: Mutex<HashMap<Key, (Instant, BearerError)>>,
}

impl Introspections {
    pub fn get(&self, key: &Key) -> Option<Result<Session, BearerError>> {
        let now = Instant::now();
        let accepted = lock(&self.accepted)
            .get(key)
            .filter(|(u, _)| now < *u)
            .map(|(_, s)| s.clone());
        match accepted {
            Some(s) => Some(Ok(s)),
            None => lock(&self.refused)
                .get(key)
                .filter(|(u, _)| now < *u)
                .map(|(_, e)| Err(e.clone())),
        }
    }

    pub fn put(&self, key: Key, result: &Result<Session, BearerError>) {
        let now = Instant::now();
        match result {
            Ok(s) => {
                let left = (s.expires_at - crate::session::now())
                    .clamp(0, INTROSPECTION_CACHE.as_secs() as i64);
                let mut map = lock(&self.accepted);
                if map.len() >= CACHE_CAP && !map.contains_key(&key) {
                    map.retain(|_, (u, _)| *u > now);
                    if map.len() >= CACHE_CAP {
                        let soonest = map.iter().min_by_key(|(_, (u, _))| *u).map(|(k, _)| *k);
                        if let Some(k) = soonest {
                            map.remove(&k);
                        }
                    }
                }
                map.insert(key, (now + Duration::from_secs(left as u64), s.clone()));
            }
            Err(e @ BearerError::Invalid(_)) => {
                let mut map = lock(&self.refused);
                if map.len() >= CACHE_CAP {
                    map.clear();
                }
                map.insert(key, (now + INTROSPECTION_CACHE, e.clone()));
            }
            Err(BearerError::UnknownKey(_) | BearerError::Unavailable) => {}
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    fn key(i: u32) -> super::Key {
        let mut k = [0u8; 32];
        k[..4].copy_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn a_flood_of_refused_tokens_never_evicts_an_accepted_one() {
        let cache = super::Introspections::default();
        let good = crate::session::Session {
            sub: "api-client".into(),
            expires_at: crate::session::now() + 300,
            ..Default::default()
        };
        cache.put(key(0), &Ok(good.clone()));
        let refused = Err(super::BearerError::Invalid("bad signature".into()));
        for i in 1..=3 * super::CACHE_CAP as u32 {
            cache.put(key(i), &refused);
        }
        assert_eq!(cache.get(&key(0)), Some(Ok(good)));
        // Unknown keys are never remembered: the next refetch may find it.
        let unknown = Err(super::BearerError::UnknownKey("kid".into()));
        cache.put(key(u32::MAX), &unknown);
        assert_eq!(cache.get(&key(u32::MAX)), None);
    }

    #[test]
    fn a_full_accepted_cache_evicts_one_entry_at_a_time() {
        let cache = super::Introspections::default();
        let now = crate::session::now();
        for i in 0..super::CACHE_CAP as u32 {
            let s = crate::session::Session {
                expires_at: now + 10 + i64::from(i % 20),
                ..Default::default()
            };
            cache.put(key(i), &Ok(s));
        }
        let newest = crate::session::Session {
            expires_at: now + 300,
            ..Default::default()
        };
        cache.put(key(u32::MAX), &Ok(newest));
        let kept = (0..super::CACHE_CAP as u32)
            .filter(|i| cache.get(&key(*i)).is_some())
            .count();
        assert_eq!(kept, super::CACHE_CAP - 1);
        assert!(cache.get(&key(u32::MAX)).is_some());
    }
}
