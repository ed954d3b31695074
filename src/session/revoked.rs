//! Ended sessions, for the cookie store: a sealed cookie stays valid until
//! it expires unless the server remembers that it ended. Sign-out records
//! the session's login (its nonce, unique per login); back-channel logout
//! records the provider session (`sid`) or the subject (`sub`, for every
//! session issued until then). Each entry lives until the longest session
//! it could match would have expired anyway.
//!
//! The memory is this process's. With several replicas each remembers only
//! the logouts it handled; deployments with more than one replica that need
//! logout to hold everywhere use the Redis store, where a session ends by
//! deleting its record (docs/security.md says so).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use super::Session;

/// Most entries remembered; beyond it the entries closest to expiry go
/// first (bounded memory under a flood of back-channel calls).
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// One login, by its nonce.
    Login(String),
    /// A provider session, for one subject when the logout token named
    /// one (empty: any subject).
    Sid(String, String),
    /// A subject: sessions issued at or before the stored time.
    Sub(String),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the entry may be forgotten (epoch seconds).
    until: i64,
    /// For `Sub`: sessions issued at or before this ended.
    at: i64,
}

/// The entries, in maps looked up by `&str`, so checking a request
/// allocates nothing.
#[derive(Debug, Default)]
struct Maps {
    logins: HashMap<String, Entry>,
    /// sid → (subject, or "" for any subject) → entry.
    sids: HashMap<String, HashMap<String, Entry>>,
    subs: HashMap<String, Entry>,
}

impl Maps {
    fn len(&self) -> usize {
        self.logins.len() + self.subs.len() + self.sids.values().map(HashMap::len).sum::<usize>()
    }

    fn get_mut(&mut self, key: Key) -> &mut Entry {
        let fresh = Entry {
            until: i64::MIN,
            at: i64::MIN,
        };
        match key {
            Key::Login(n) => self.logins.entry(n).or_insert(fresh),
            Key::Sid(sid, sub) => self
                .sids
                .entry(sid)
                .or_default()
                .entry(sub)
                .or_insert(fresh),
            Key::Sub(sub) => self.subs.entry(sub).or_insert(fresh),
        }
    }

    fn prune(&mut self, now: i64) {
        self.logins.retain(|_, e| e.until > now);
        self.subs.retain(|_, e| e.until > now);
        for m in self.sids.values_mut() {
            m.retain(|_, e| e.until > now);
        }
        self.sids.retain(|_, m| !m.is_empty());
    }

    /// Removes the entry closest to its end: its session is the nearest to
    /// expiring by itself.
    fn evict_one(&mut self) {
        let login = self
            .logins
            .iter()
            .min_by_key(|(_, e)| e.until)
            .map(|(k, e)| (e.until, k.clone()));
        let sub = self
            .subs
            .iter()
            .min_by_key(|(_, e)| e.until)
            .map(|(k, e)| (e.until, k.clone()));
        let sid = self
            .sids
            .iter()
            .flat_map(|(sid, m)| m.iter().map(move |(sub, e)| (e.until, sid, sub)))
            .min_by_key(|(until, _, _)| *until)
            .map(|(u, sid, sub)| (u, sid.clone(), sub.clone()));
        let key = [
            login.map(|(u, k)| (u, Key::Login(k))),
            sub.map(|(u, k)| (u, Key::Sub(k))),
            sid.map(|(u, a, b)| (u, Key::Sid(a, b))),
        ]
        .into_iter()
        .flatten()
        .min_by_key(|(u, _)| *u);
        match key.map(|(_, k)| k) {
            Some(Key::Login(n)) => {
                self.logins.remove(&n);
            }
            Some(Key::Sub(sub)) => {
                self.subs.remove(&sub);
            }
            Some(Key::Sid(sid, sub)) => {
                if let Some(m) = self.sids.get_mut(&sid) {
                    m.remove(&sub);
                    if m.is_empty() {
                        self.sids.remove(&sid);
                    }
                }
            }
            None => {}
        }
    }
}

/// The process-wide set. Empty (one atomic load per request) until a
/// logout happens.
#[derive(Debug, Default)]
pub struct Revocations {
    any: AtomicBool,
    entries: RwLock<Maps>,
    /// Logout-token `jti`s seen (replay), with when they may be forgotten.
    jtis: RwLock<HashMap<String, i64>>,
}

pub static REVOKED: std::sync::LazyLock<Revocations> =
    std::sync::LazyLock::new(Revocations::default);

impl Revocations {
    /// Whether `session` has ended.
    pub fn is_revoked(&self, s: &Session) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let m = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if s.nonce.as_deref().is_some_and(|n| m.logins.contains_key(n)) {
            return true;
        }
        if let Some(by_sub) = s.sid.as_deref().and_then(|sid| m.sids.get(sid)) {
            if by_sub.contains_key("") || by_sub.contains_key(s.sub.as_str()) {
                return true;
            }
        }
        m.subs
            .get(s.sub.as_str())
            .is_some_and(|e| s.issued_at <= e.at)
    }

    /// Sign-out of one session (remembered until it would have expired).
    pub fn end_session(&self, s: &Session) {
        if let Some(n) = &s.nonce {
            self.insert(
                Key::Login(n.clone()),
                Entry {
                    until: s.expires_at,
                    at: 0,
                },
            );
        }
    }

    /// Back-channel logout: every session of a provider session, or every
    /// session of a subject issued until `now`. `lifetime` is the longest a
    /// session lives (`session.lifetime`).
    pub fn end_provider_session(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
        now: i64,
        lifetime: i64,
    ) {
        let until = now.saturating_add(lifetime);
        match (sid, sub) {
            // With both, only that subject's sessions of the provider
            // session end (Back-Channel Logout §2.6: a token naming alice's
            // `sid` with `sub: bob` ends nothing of alice's).
            (Some(sid), sub) => self.insert(
                Key::Sid(sid.to_string(), sub.unwrap_or_default().to_string()),
                Entry { until, at: now },
            ),
            (None, Some(sub)) => self.insert(Key::Sub(sub.to_string()), Entry { until, at: now }),
            (None, None) => {}
        }
    }

    /// Records a logout token's `jti`; false when it was seen before.
    pub fn claim_jti(&self, issuer: &str, jti: &str, now: i64, ttl: i64) -> bool {
        let mut jtis = self.jtis.write().unwrap_or_else(|e| e.into_inner());
        if jtis.len() >= MAX_ENTRIES {
            jtis.retain(|_, until| *until > now);
        }
        if jtis.len() >= MAX_ENTRIES {
            // Still full of live entries: refuse rather than forget one
            // (a replay must never pass).
            return false;
        }
        jtis.insert(format!("{issuer}\n{jti}"), now.saturating_add(ttl))
            .is_none_or(|until| until <= now)
    }

    fn insert(&self, key: Key, entry: Entry) {
        let now = super::now();
        let mut m = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if m.len() >= MAX_ENTRIES {
            m.prune(now);
        }
        if m.len() >= MAX_ENTRIES {
            m.evict_one();
        }
        let e = m.get_mut(key);
        e.until = e.until.max(entry.until);
        e.at = e.at.max(entry.at);
        self.any.store(true, Ordering::Release);
    }

    /// Forgets everything (tests).
    #[cfg(test)]
    fn clear(&self) {
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Maps::default();
        self.any.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(nonce: &str, sid: Option<&str>, issued_at: i64) -> Session {
        Session {
            sub: "alice".into(),
            nonce: Some(nonce.into()),
            sid: sid.map(str::to_string),
            issued_at,
            expires_at: issued_at + 3600,
            ..Session::default()
        }
    }

    #[test]
    fn sign_out_ends_that_login_only() {
        let r = Revocations::default();
        let a = session("n1", None, 100);
        let b = session("n2", None, 100);
        assert!(!r.is_revoked(&a));
        r.end_session(&a);
        assert!(r.is_revoked(&a));
        assert!(!r.is_revoked(&b));
    }

    #[test]
    fn backchannel_by_sid_and_by_subject_before_the_logout() {
        let r = Revocations::default();
        let s1 = session("n1", Some("sid-1"), 100);
        let s2 = session("n2", Some("sid-2"), 100);
        r.end_provider_session(Some("sid-1"), Some("bob"), 200, 3600);
        assert!(!r.is_revoked(&s1), "bob's token cannot end alice's session");
        r.end_provider_session(Some("sid-1"), Some("alice"), 200, 3600);
        assert!(r.is_revoked(&s1));
        assert!(
            !r.is_revoked(&s2),
            "a sid logout ends that provider session only"
        );
        r.end_provider_session(None, Some("alice"), 200, 3600);
        assert!(r.is_revoked(&s2));
        let later = session("n3", Some("sid-3"), 201);
        assert!(
            !r.is_revoked(&later),
            "a login after the logout is a new session"
        );
    }

    #[test]
    fn a_jti_is_claimed_once() {
        let r = Revocations::default();
        assert!(r.claim_jti("iss", "j1", 100, 60));
        assert!(!r.claim_jti("iss", "j1", 120, 60));
        assert!(r.claim_jti("other", "j1", 120, 60));
        assert!(r.claim_jti("iss", "j1", 200, 60), "forgotten after its ttl");
    }

    #[test]
    fn memory_is_bounded() {
        let r = Revocations::default();
        for i in 0..(MAX_ENTRIES + 10) {
            r.end_session(&session(&format!("n{i}"), None, 100));
        }
        assert!(r.entries.read().expect("lock").len() <= MAX_ENTRIES);
        assert!(r.is_revoked(&session(&format!("n{}", MAX_ENTRIES + 9), None, 100)));
        r.clear();
        assert!(!r.is_revoked(&session("n5", None, 100)));
    }
}
