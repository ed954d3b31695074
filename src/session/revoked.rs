//! Ended sessions, for the cookie store: a sealed cookie stays valid until
//! it expires unless the server remembers that it ended. Sign-out records
//! the session's login (its nonce, unique per login); back-channel logout
//! records the provider session (`sid`) or the subject (`sub`, for every
//! session issued until then). Each entry lives until the longest session
//! it could match would have expired anyway.
//!
//! The memory is bounded (`session.max_remembered_logouts`) and never
//! forgets a live entry to make room: see [`Revocations`] for what happens
//! when it is full.
//!
//! The memory is this process's. With several replicas each remembers only
//! the logouts it handled; deployments with more than one replica that need
//! logout to hold everywhere use the Redis store, where a session ends by
//! deleting its record (docs/security.md says so).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::RwLock;

use super::Session;

/// Entries remembered by default (`session.max_remembered_logouts`).
pub const MAX_ENTRIES: usize = 100_000;
/// Sign-outs remembered one by one for one subject; at this many, they are
/// merged into one entry for every session of that subject issued until
/// then, so one account looping login → sign-out holds a handful of slots.
pub const MAX_LOGINS_PER_SUBJECT: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

impl Entry {
    fn merge(self, other: Entry) -> Entry {
        Entry {
            until: self.until.max(other.until),
            at: self.at.max(other.at),
        }
    }
}

/// The entries, in maps looked up by `&str` (checking a request allocates
/// nothing), with an expiry index so forgetting what has expired costs
/// O(log n) per entry. A live entry is never forgotten.
#[derive(Debug, Default)]
struct Maps {
    logins: HashMap<String, Entry>,
    /// sid → (subject, or "" for any subject) → entry.
    sids: HashMap<String, HashMap<String, Entry>>,
    subs: HashMap<String, Entry>,
    /// subject → the nonces of its remembered sign-outs.
    logins_of: HashMap<String, Vec<String>>,
    /// nonce → subject, to keep `logins_of` in step.
    subject_of: HashMap<String, String>,
    by_expiry: BTreeSet<(i64, Key)>,
    len: usize,
}

impl Maps {
    fn get(&self, key: &Key) -> Option<Entry> {
        match key {
            Key::Login(n) => self.logins.get(n).copied(),
            Key::Sid(sid, sub) => self.sids.get(sid).and_then(|m| m.get(sub)).copied(),
            Key::Sub(sub) => self.subs.get(sub).copied(),
        }
    }

    /// Records `entry` under `key`, merged with what is there.
    fn put(&mut self, key: Key, entry: Entry, subject: &str) {
        let merged = match self.get(&key) {
            Some(old) => {
                self.by_expiry.remove(&(old.until, key.clone()));
                old.merge(entry)
            }
            None => {
                self.len += 1;
                if let Key::Login(n) = &key {
                    self.logins_of
                        .entry(subject.to_string())
                        .or_default()
                        .push(n.clone());
                    self.subject_of.insert(n.clone(), subject.to_string());
                }
                entry
            }
        };
        self.by_expiry.insert((merged.until, key.clone()));
        match key {
            Key::Login(n) => self.logins.insert(n, merged),
            Key::Sid(sid, sub) => self.sids.entry(sid).or_default().insert(sub, merged),
            Key::Sub(sub) => self.subs.insert(sub, merged),
        };
    }

    fn remove(&mut self, key: &Key) -> Option<Entry> {
        let removed = match key {
            Key::Login(n) => {
                let e = self.logins.remove(n);
                if let Some(sub) = self.subject_of.remove(n) {
                    if let Some(list) = self.logins_of.get_mut(&sub) {
                        list.retain(|x| x != n);
                        if list.is_empty() {
                            self.logins_of.remove(&sub);
                        }
                    }
                }
                e
            }
            Key::Sid(sid, sub) => {
                let m = self.sids.get_mut(sid)?;
                let e = m.remove(sub);
                if m.is_empty() {
                    self.sids.remove(sid);
                }
                e
            }
            Key::Sub(sub) => self.subs.remove(sub),
        }?;
        self.by_expiry.remove(&(removed.until, key.clone()));
        self.len -= 1;
        Some(removed)
    }

    /// Forgets the entries whose sessions have all expired by now.
    fn prune(&mut self, now: i64) {
        while let Some((until, key)) = self.by_expiry.first().cloned() {
            if until > now {
                break;
            }
            self.remove(&key);
        }
    }

    /// Replaces a subject's remembered sign-outs by one entry for every
    /// session of the subject issued until `now`.
    fn merge_subject(&mut self, subject: &str, now: i64, until: i64) {
        let mut merged = Entry { until, at: now };
        for n in self.logins_of.get(subject).cloned().unwrap_or_default() {
            if let Some(e) = self.remove(&Key::Login(n)) {
                merged.until = merged.until.max(e.until);
            }
        }
        self.put(Key::Sub(subject.to_string()), merged, subject);
    }
}

/// What happened to a logout that had to be remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Remembered as asked.
    Exact,
    /// Merged into "every session of this subject issued until now".
    Subject,
    /// No room for a live entry: every session issued until now has ended.
    Everyone,
}

/// Says, and counts, that a logout was remembered more broadly than asked.
fn fell_back(r: Recorded) -> Recorded {
    let reason = match r {
        Recorded::Exact => return r,
        Recorded::Subject => {
            tracing::info!(target: "tollgate::audit", event = "revocation_merged", "sign-out remembered as every session of its subject issued until now (many sign-outs, or the logout memory is full)");
            "subject"
        }
        Recorded::Everyone => {
            tracing::error!(target: "tollgate::audit", event = "revocation_memory_full", "the logout memory (session.max_remembered_logouts) is full of live entries: every session issued until now has ended; use the Redis store, or raise the limit");
            "everyone"
        }
    };
    crate::telemetry::metrics::metrics()
        .revocation_fallbacks
        .get_or_create(&crate::telemetry::metrics::ReasonLabels { reason })
        .inc();
    r
}

/// The process-wide set. Empty (one atomic load per request) until a
/// logout happens.
#[derive(Debug)]
pub struct Revocations {
    any: AtomicBool,
    entries: RwLock<Maps>,
    capacity: AtomicUsize,
    /// Sessions issued at or before this ended (the last resort when the
    /// memory is full of live entries); `i64::MIN`: none.
    floor: AtomicI64,
    /// Logout-token `jti`s seen (replay), with when they may be forgotten.
    jtis: RwLock<HashMap<String, i64>>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            any: AtomicBool::new(false),
            entries: RwLock::default(),
            capacity: AtomicUsize::new(MAX_ENTRIES),
            floor: AtomicI64::new(i64::MIN),
            jtis: RwLock::default(),
        }
    }
}

pub static REVOKED: std::sync::LazyLock<Revocations> =
    std::sync::LazyLock::new(Revocations::default);

/// Why a logout token's `jti` was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JtiRefused {
    /// Seen before: a replay.
    Replay,
    /// The replay memory is full of live `jti`s: refused rather than
    /// forgetting one.
    Full,
}

impl Revocations {
    /// Sets how many entries are remembered (`session.max_remembered_logouts`).
    pub fn set_capacity(&self, entries: usize) {
        self.capacity.store(entries.max(1), Ordering::Relaxed);
    }

    /// Whether `session` has ended.
    pub fn is_revoked(&self, s: &Session) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        if s.issued_at <= self.floor.load(Ordering::Acquire) {
            return true;
        }
        let m = self.entries.read().unwrap_or_else(|e| e.into_inner());
        if s.nonce.as_deref().is_some_and(|n| m.logins.contains_key(n)) {
            return true;
        }
        let sub = Session::scoped(s.provider_id(), &s.sub);
        if let Some(by_sub) = s
            .sid
            .as_deref()
            .and_then(|sid| m.sids.get(&*Session::scoped(s.provider_id(), sid)))
        {
            if by_sub.contains_key("") || by_sub.contains_key(&*sub) {
                return true;
            }
        }
        m.subs.get(&*sub).is_some_and(|e| s.issued_at <= e.at)
    }

    /// Sign-out of one session (remembered until it would have expired).
    pub fn end_session(&self, s: &Session) -> Recorded {
        let Some(n) = &s.nonce else {
            // Sessions from before nonces were kept: by subject.
            let entry = Entry {
                until: s.expires_at,
                at: s.issued_at,
            };
            let sub = Session::scoped(s.provider_id(), &s.sub).into_owned();
            return self.insert(Key::Sub(sub.clone()), entry, &sub);
        };
        let entry = Entry {
            until: s.expires_at,
            at: 0,
        };
        self.insert(Key::Login(n.clone()), entry, &s.sub)
    }

    /// Back-channel logout: every session of a provider session, or every
    /// session of a subject issued until `now`. `sid` and `sub` are
    /// scoped to their provider ([`Session::scoped`]). `lifetime` is the longest a
    /// session lives (`session.lifetime`).
    pub fn end_provider_session(
        &self,
        sid: Option<&str>,
        sub: Option<&str>,
        now: i64,
        lifetime: i64,
    ) -> Recorded {
        let entry = Entry {
            until: now.saturating_add(lifetime),
            at: now,
        };
        let subject = sub.unwrap_or_default();
        match (sid, sub) {
            // With both, only that subject's sessions of the provider
            // session end (Back-Channel Logout §2.6: a token naming alice's
            // `sid` with `sub: bob` ends nothing of alice's).
            (Some(sid), _) => self.insert(
                Key::Sid(sid.to_string(), subject.to_string()),
                entry,
                subject,
            ),
            (None, Some(sub)) => self.insert(Key::Sub(sub.to_string()), entry, sub),
            (None, None) => Recorded::Exact,
        }
    }

    /// Records a logout token's `jti`.
    pub fn claim_jti(&self, issuer: &str, jti: &str, now: i64, ttl: i64) -> Result<(), JtiRefused> {
        let mut jtis = self.jtis.write().unwrap_or_else(|e| e.into_inner());
        let capacity = self.capacity.load(Ordering::Relaxed);
        if jtis.len() >= capacity {
            jtis.retain(|_, until| *until > now);
        }
        let key = format!("{issuer}\n{jti}");
        if jtis.get(&key).is_some_and(|until| *until > now) {
            return Err(JtiRefused::Replay);
        }
        if jtis.len() >= capacity {
            // Still full of live entries: refuse rather than forget one
            // (a replay must never pass).
            return Err(JtiRefused::Full);
        }
        jtis.insert(key, now.saturating_add(ttl));
        Ok(())
    }

    /// Remembers `key`; never forgets a live entry to make room. Without
    /// room, a sign-out becomes "every session of this subject issued until
    /// now", and as a last resort every session issued until now ends.
    fn insert(&self, key: Key, entry: Entry, subject: &str) -> Recorded {
        let now = super::now();
        let capacity = self.capacity.load(Ordering::Relaxed);
        let mut m = self.entries.write().unwrap_or_else(|e| e.into_inner());
        m.prune(now);
        self.any.store(true, Ordering::Release);
        let crowded = m.logins_of.get(subject).map_or(0, Vec::len) >= MAX_LOGINS_PER_SUBJECT;
        let is_login = matches!(key, Key::Login(_));
        if m.get(&key).is_some() || (m.len < capacity && !(is_login && crowded)) {
            m.put(key, entry, subject);
            return Recorded::Exact;
        }
        let subject_fits = m.get(&Key::Sub(subject.to_string())).is_some()
            || m.logins_of.contains_key(subject)
            || m.len < capacity;
        if !subject.is_empty() && subject_fits {
            m.merge_subject(subject, now, entry.until);
            return fell_back(Recorded::Subject);
        }
        self.floor.fetch_max(now, Ordering::AcqRel);
        fell_back(Recorded::Everyone)
    }

    /// Forgets everything (tests).
    #[cfg(test)]
    fn clear(&self) {
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Maps::default();
        self.floor.store(i64::MIN, Ordering::Release);
        self.any.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(sub: &str, nonce: &str, sid: Option<&str>, issued_at: i64) -> Session {
        Session {
            sub: sub.into(),
            nonce: Some(nonce.into()),
            sid: sid.map(str::to_string),
            issued_at,
            expires_at: issued_at + 3600,
            ..Session::default()
        }
    }

    fn alice(nonce: &str, sid: Option<&str>, issued_at: i64) -> Session {
        session("alice", nonce, sid, issued_at)
    }

    #[test]
    fn sign_out_ends_that_login_only() {
        let r = Revocations::default();
        let t = crate::session::now();
        let a = alice("n1", None, t);
        let b = alice("n2", None, t);
        assert!(!r.is_revoked(&a));
        assert_eq!(r.end_session(&a), Recorded::Exact);
        assert!(r.is_revoked(&a));
        assert!(!r.is_revoked(&b));
    }

    #[test]
    fn backchannel_by_sid_and_by_subject_before_the_logout() {
        let r = Revocations::default();
        let t = crate::session::now();
        let s1 = alice("n1", Some("sid-1"), t - 100);
        let s2 = alice("n2", Some("sid-2"), t - 100);
        r.end_provider_session(Some("sid-1"), Some("bob"), t, 3600);
        assert!(!r.is_revoked(&s1), "bob's token cannot end alice's session");
        r.end_provider_session(Some("sid-1"), Some("alice"), t, 3600);
        assert!(r.is_revoked(&s1));
        assert!(
            !r.is_revoked(&s2),
            "a sid logout ends that provider session only"
        );
        r.end_provider_session(None, Some("alice"), t, 3600);
        assert!(r.is_revoked(&s2));
        let later = alice("n3", Some("sid-3"), t + 1);
        assert!(
            !r.is_revoked(&later),
            "a login after the logout is a new session"
        );
    }

    #[test]
    fn another_providers_subject_is_another_key() {
        let r = Revocations::default();
        let t = crate::session::now();
        let here = alice("n1", Some("sid-1"), t - 100);
        let mut there = alice("n2", Some("sid-1"), t - 100);
        there.provider = Some("partner".into());
        let scoped = |v| Session::scoped("partner", v).into_owned();
        r.end_provider_session(Some(&scoped("sid-1")), Some(&scoped("alice")), t, 3600);
        assert!(r.is_revoked(&there));
        assert!(
            !r.is_revoked(&here),
            "the default provider's alice is someone else"
        );
        r.end_provider_session(None, Some("alice"), t, 3600);
        assert!(r.is_revoked(&here));
    }

    #[test]
    fn a_jti_is_claimed_once() {
        let r = Revocations::default();
        assert_eq!(r.claim_jti("iss", "j1", 100, 60), Ok(()));
        assert_eq!(r.claim_jti("iss", "j1", 120, 60), Err(JtiRefused::Replay));
        assert_eq!(r.claim_jti("other", "j1", 120, 60), Ok(()));
        assert_eq!(
            r.claim_jti("iss", "j1", 200, 60),
            Ok(()),
            "forgotten after its ttl"
        );
        r.set_capacity(2);
        assert_eq!(r.claim_jti("iss", "j2", 200, 60), Ok(()));
        assert_eq!(r.claim_jti("iss", "j3", 200, 60), Err(JtiRefused::Full));
    }

    #[test]
    fn a_live_sign_out_is_never_forgotten_to_make_room() {
        let r = Revocations::default();
        r.set_capacity(50);
        let t = crate::session::now();
        let victim = session("victim", "v", None, t);
        r.end_session(&victim);
        // One account looping login → sign-out holds a handful of slots.
        for i in 0..1000 {
            r.end_session(&session("mallory", &format!("m{i}"), None, t));
        }
        assert!(r.is_revoked(&victim));
        assert!(r.is_revoked(&session("mallory", "m3", None, t)));
        let m = r.entries.read().expect("lock");
        assert!(m.len <= MAX_LOGINS_PER_SUBJECT + 1, "{} entries", m.len);
    }

    #[test]
    fn a_full_memory_falls_back_to_the_subject_then_to_everyone() {
        let r = Revocations::default();
        r.set_capacity(10);
        let t = crate::session::now();
        for i in 0..10 {
            let s = session(&format!("u{i}"), &format!("n{i}"), None, t);
            assert_eq!(r.end_session(&s), Recorded::Exact);
        }
        // u0 already has an entry: its next sign-out merges by subject.
        assert_eq!(
            r.end_session(&session("u0", "n0b", None, t)),
            Recorded::Subject
        );
        let other_u0 = session("u0", "n0c", None, t - 5);
        assert!(r.is_revoked(&other_u0), "u0's sessions until now ended");
        // A newcomer finds no room: every session issued until now ends.
        let bystander = session("bystander", "b", None, t);
        assert_eq!(
            r.end_session(&session("new", "x", None, t)),
            Recorded::Everyone
        );
        assert!(r.is_revoked(&bystander));
        for i in 1..10 {
            assert!(r.is_revoked(&session(&format!("u{i}"), &format!("n{i}"), None, t)));
        }
        r.clear();
        assert!(!r.is_revoked(&bystander));
    }

    #[test]
    fn expired_entries_are_forgotten_in_expiry_order() {
        let r = Revocations::default();
        let t = crate::session::now();
        let mut old = alice("old", None, t - 7200);
        old.expires_at = t - 1;
        r.end_session(&old);
        r.end_session(&alice("live", None, t));
        let m = r.entries.read().expect("lock");
        assert_eq!(m.len, 1);
        assert!(m.logins.contains_key("live"));
        assert_eq!(m.by_expiry.len(), 1);
    }
}
