//! The session cookie on the wire: sealed, split into numbered chunks when
//! larger than one cookie, reassembled on the way in, stale chunks expired.
//!
//! Names: `<name>` when the session fits one cookie, `<name>_0`, `<name>_1`,
//! … when it does not (the convention oauth2-proxy users know).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cookie::{Cookie, SameSite};

use super::codec::{Codec, Opened};
use super::redis::Ticket;
use super::settings::SessionConfig;
use super::{now, Session};

/// Bytes of sealed value per cookie: leaves room for the name and
/// attributes under the 4096-byte limit browsers apply to one cookie.
pub const CHUNK_SIZE: usize = 3800;
/// Most chunks read: bounds the work a client can make us do.
pub const MAX_CHUNKS: usize = 16;

/// The cookies of one request, parsed once.
#[derive(Debug, Default)]
pub struct RequestCookies<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> RequestCookies<'a> {
    /// Parses every `Cookie` header (HTTP/2 may split one into several)
    /// from its bytes: a pair that is not UTF-8 (`lang=café` written raw by
    /// a script) or otherwise malformed is skipped alone, never the whole
    /// header with the session beside it.
    pub fn parse<I: IntoIterator<Item = &'a [u8]>>(headers: I) -> Self {
        let mut pairs = Vec::new();
        for h in headers {
            for pair in cookie_pairs(h) {
                let Ok(pair) = std::str::from_utf8(pair) else {
                    continue;
                };
                if let Ok(c) = Cookie::parse(pair) {
                    if let (Some(n), Some(v)) = (c.name_raw(), c.value_raw()) {
                        pairs.push((n, v));
                    }
                }
            }
        }
        Self { pairs }
    }

    /// The cookies of a request's `Cookie` headers.
    pub fn of(headers: &'a http::HeaderMap) -> Self {
        Self::parse(
            headers
                .get_all(http::header::COOKIE)
                .iter()
                .map(http::HeaderValue::as_bytes),
        )
    }

    /// The first value of a cookie.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.pairs.iter().map(|(n, _)| *n)
    }

    /// Every `(name, value)`, in request order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.pairs.iter().copied()
    }
}

/// The `;`-separated pairs of one `Cookie` header value, untrimmed. A value
/// that is UTF-8 (nearly all) is split as text, which searches for `;` a
/// word at a time; any other is split byte by byte, so one non-UTF-8 pair
/// never hides the others.
pub fn cookie_pairs(value: &[u8]) -> CookiePairs<'_> {
    match std::str::from_utf8(value) {
        Ok(text) => CookiePairs::Text(text.split(';')),
        Err(_) => CookiePairs::Bytes(value.split(is_semicolon)),
    }
}

fn is_semicolon(b: &u8) -> bool {
    *b == b';'
}

/// See [`cookie_pairs`].
pub enum CookiePairs<'a> {
    Text(std::str::Split<'a, char>),
    Bytes(std::slice::Split<'a, u8, fn(&u8) -> bool>),
}

impl<'a> Iterator for CookiePairs<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            CookiePairs::Text(s) => s.next().map(str::as_bytes),
            CookiePairs::Bytes(b) => b.next(),
        }
    }
}

/// The sealed session needs more than [`MAX_CHUNKS`] cookies.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the session needs {0} bytes, more than {MAX_CHUNKS} cookies hold")]
pub struct TooLarge(pub usize);

/// What reading the session cookie found.
#[derive(Debug, Default)]
pub struct Found {
    /// Shared with the opened-session cache: a request costs no copy.
    pub session: Option<Arc<Session>>,
    /// Opened with a previous key: write it again with the current one.
    pub reseal: bool,
    /// Names of our session cookies present in the request (for clearing).
    pub present: Vec<String>,
}

/// Reads and writes the session cookie.
#[derive(Debug)]
pub struct SessionCookies {
    name: String,
    secure: bool,
    same_site: SameSite,
    domain: Option<String>,
    path: String,
    lifetime: Duration,
    opened: OpenedCache,
}

/// Sessions recently opened, by their sealed value, so a browser's every
/// click does not pay for base64, AES-GCM and JSON again. Only values that
/// opened and parsed are kept, each with the exact bytes that authenticated;
/// a hit is a value equal to those (compared in constant time), so it is the
/// same decision the cipher made. Entries are found by a keyed 64-bit hash
/// (seeded at random per cache), a fraction of the cost of a digest; two
/// values with the same hash only cost the second one a decryption.
/// Expiry is checked on every hit; a reload (new secrets) builds a new,
/// empty cache.
#[derive(Default)]
struct OpenedCache {
    inner: std::sync::Mutex<CacheInner>,
    hasher: foldhash::quality::RandomState,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<u64, Arc<Cached>>,
    /// Sum of the entries' plaintext sizes.
    bytes: usize,
}

struct Cached {
    /// The sealed value that opened.
    sealed: Box<[u8]>,
    session: Arc<Session>,
    stale_key: bool,
    /// Sealed and plaintext sizes: what the entry costs in memory, roughly.
    bytes: usize,
}

impl Cached {
    /// Whether this entry is for exactly `sealed`, compared in constant
    /// time (aws-lc's CRYPTO_memcmp: `subtle`'s loop, a barrier per byte,
    /// cost a fifth of a proxied request for a one-chunk cookie).
    fn is(&self, sealed: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.sealed, sealed.as_bytes()).is_ok()
    }
}

/// Memory the cache may hold (sealed and plaintext bytes; a few MiB in all,
/// whatever the number of users or the size of their sessions).
const OPENED_CACHE_BYTES: usize = 4 * 1024 * 1024;

impl OpenedCache {
    fn key(&self, sealed: &str) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(sealed.as_bytes())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry for exactly `sealed`.
    fn get(&self, key: u64, sealed: &str) -> Option<Arc<Cached>> {
        let hit = self.lock().entries.get(&key).cloned()?;
        hit.is(sealed).then_some(hit)
    }

    fn put(&self, key: u64, entry: Arc<Cached>) {
        let mut c = self.lock();
        if c.entries.contains_key(&key) {
            return;
        }
        // Any entry will do as a victim: a miss only costs one decryption.
        while c.bytes + entry.bytes > OPENED_CACHE_BYTES {
            let Some(victim) = c.entries.keys().next().copied() else {
                return; // larger than the whole budget: not cached
            };
            c.remove(victim);
        }
        c.bytes += entry.bytes;
        c.entries.insert(key, entry);
    }

    /// Removes the entry for exactly `sealed` (not another value that
    /// shares its hash).
    fn forget(&self, key: u64, sealed: &str) {
        let mut c = self.lock();
        if c.entries.get(&key).is_some_and(|e| e.is(sealed)) {
            c.remove(key);
        }
    }
}

impl CacheInner {
    fn remove(&mut self, key: u64) {
        if let Some(e) = self.entries.remove(&key) {
            self.bytes -= e.bytes;
        }
    }
}

impl std::fmt::Debug for OpenedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.lock();
        f.debug_struct("OpenedCache")
            .field("entries", &c.entries.len())
            .field("bytes", &c.bytes)
            .finish()
    }
}

impl SessionCookies {
    pub fn new(config: &SessionConfig) -> Self {
        Self {
            name: config.cookie_name.clone(),
            secure: config.secure,
            same_site: config.same_site,
            domain: config.domain.clone(),
            path: config.path.clone(),
            lifetime: config.lifetime,
            opened: OpenedCache::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Whether `cookie` is one of tollgate's own (session chunks or login
    /// state), which are never forwarded upstream.
    pub fn is_ours(&self, cookie: &str) -> bool {
        match cookie.strip_prefix(self.name.as_str()) {
            Some("") => true,
            Some(rest) => match rest.strip_prefix('_') {
                Some(r) => {
                    (!r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
                        || r.starts_with("login_")
                }
                None => false,
            },
            None => false,
        }
    }

    fn is_session_chunk(&self, cookie: &str) -> bool {
        self.is_ours(cookie) && !cookie[self.name.len()..].starts_with("_login_")
    }

    /// Names of our session cookies (not login cookies) in a request.
    pub fn present(&self, cookies: &RequestCookies<'_>) -> Vec<String> {
        cookies
            .names()
            .filter(|n| self.is_session_chunk(n))
            .map(str::to_string)
            .collect()
    }

    /// The sealed value as sent: one cookie, or the chunks reassembled in
    /// order (at most [`MAX_CHUNKS`]).
    fn sealed_value<'a>(&self, cookies: &RequestCookies<'a>) -> Option<Cow<'a, str>> {
        if let Some(v) = cookies.get(&self.name) {
            return Some(Cow::Borrowed(v));
        }
        let mut joined = String::new();
        for i in 0..MAX_CHUNKS {
            match cookies.get(&format!("{}_{i}", self.name)) {
                Some(v) => joined.push_str(v),
                None => break,
            }
        }
        (!joined.is_empty()).then_some(Cow::Owned(joined))
    }

    /// Reassembles and opens the sealed value (one cookie or chunks).
    fn open_sealed(
        &self,
        codec: &Codec,
        cookies: &RequestCookies<'_>,
    ) -> (Option<Opened>, Vec<String>) {
        let present = self.present(cookies);
        if present.is_empty() {
            return (None, present);
        }
        let opened = self
            .sealed_value(cookies)
            .and_then(|s| codec.open(&self.name, &s));
        (opened, present)
    }

    /// Reassembles, opens and checks the session. Anything that does not
    /// open, does not parse or has expired is "no session", never an error.
    pub fn read(&self, codec: &Codec, cookies: &RequestCookies<'_>) -> Found {
        let present = self.present(cookies);
        let Some(sealed) = (!present.is_empty())
            .then(|| self.sealed_value(cookies))
            .flatten()
        else {
            return Found {
                present,
                ..Found::default()
            };
        };
        let key = self.opened.key(&sealed);
        let entry = match self.opened.get(key, &sealed) {
            Some(hit) => Some(hit),
            None => codec
                .open(&self.name, &sealed)
                .and_then(|o| {
                    Some(Arc::new(Cached {
                        sealed: sealed.as_bytes().into(),
                        session: Arc::new(serde_json::from_str::<Session>(&o.plaintext).ok()?),
                        stale_key: o.stale_key,
                        bytes: o.plaintext.len() + sealed.len(),
                    }))
                })
                .inspect(|e| self.opened.put(key, e.clone())),
        };
        let (session, reseal) = match entry {
            Some(e) if !e.session.is_expired(now()) => (Some(e.session.clone()), e.stale_key),
            Some(_) => {
                self.opened.forget(key, &sealed);
                (None, false)
            }
            None => (None, false),
        };
        Found {
            session,
            reseal,
            present,
        }
    }

    /// The Redis ticket the cookie carries (server-side sessions), whether
    /// it needs re-sealing, and the cookies present.
    pub fn read_ticket(
        &self,
        codec: &Codec,
        cookies: &RequestCookies<'_>,
    ) -> (Option<Ticket>, bool, Vec<String>) {
        let (opened, present) = self.open_sealed(codec, cookies);
        match opened.and_then(|o| Some((Ticket::parse(&o.plaintext)?, o.stale_key))) {
            Some((t, reseal)) => (Some(t), reseal, present),
            None => (None, false, present),
        }
    }

    /// `Set-Cookie` values that store `session`, expiring any chunk present
    /// in the request that the new value does not overwrite. A session that
    /// would not be read back (more than [`MAX_CHUNKS`]) is refused.
    pub fn write(
        &self,
        codec: &Codec,
        session: &Session,
        present: &[String],
    ) -> Result<Vec<String>, TooLarge> {
        let plaintext = serde_json::to_string(session).map_err(|_| TooLarge(0))?;
        let sealed = codec.seal(&self.name, &plaintext);
        if sealed.len() > CHUNK_SIZE * MAX_CHUNKS {
            return Err(TooLarge(sealed.len()));
        }
        Ok(self.emit(sealed, session.expires_at, present))
    }

    /// `Set-Cookie` values that hand the browser a Redis ticket.
    pub fn write_ticket(
        &self,
        codec: &Codec,
        ticket: &Ticket,
        expires_at: i64,
        present: &[String],
    ) -> Vec<String> {
        self.emit(
            codec.seal(&self.name, &ticket.encode()),
            expires_at,
            present,
        )
    }

    fn emit(&self, sealed: String, expires_at: i64, present: &[String]) -> Vec<String> {
        let max_age = (expires_at - now()).max(0);
        let mut out = Vec::new();
        let mut written: Vec<String> = Vec::new();
        if sealed.len() <= CHUNK_SIZE {
            out.push(self.cookie(self.name.clone(), sealed, max_age));
            written.push(self.name.clone());
        } else {
            // Base64 is ASCII, so byte chunks are char boundaries.
            for (i, part) in sealed.as_bytes().chunks(CHUNK_SIZE).enumerate() {
                let name = format!("{}_{i}", self.name);
                out.push(self.cookie(
                    name.clone(),
                    String::from_utf8_lossy(part).into_owned(),
                    max_age,
                ));
                written.push(name);
            }
        }
        for stale in present.iter().filter(|p| !written.contains(p)) {
            out.push(self.removal(stale.clone()));
        }
        out
    }

    /// `Set-Cookie` values that delete every present chunk (and the plain
    /// name, so a browser holding an unseen cookie also loses it).
    pub fn clear(&self, present: &[String]) -> Vec<String> {
        let mut names: Vec<String> = present.to_vec();
        if !names.contains(&self.name) {
            names.push(self.name.clone());
        }
        names.into_iter().map(|n| self.removal(n)).collect()
    }

    fn base(&self, name: String, value: String) -> Cookie<'static> {
        let mut c = Cookie::new(name, value);
        c.set_http_only(true);
        c.set_secure(self.secure);
        c.set_same_site(self.same_site);
        c.set_path(self.path.clone());
        if let Some(d) = &self.domain {
            c.set_domain(d.clone());
        }
        c
    }

    fn cookie(&self, name: String, value: String, max_age: i64) -> String {
        let mut c = self.base(name, value);
        c.set_max_age(cookie::time::Duration::seconds(max_age));
        c.to_string()
    }

    fn removal(&self, name: String) -> String {
        let mut c = self.base(name, String::new());
        c.make_removal();
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn store() -> (SessionCookies, Codec) {
        store_keyed(7)
    }

    fn store_keyed(key: u8) -> (SessionCookies, Codec) {
        let cfg = SessionConfig::cookie_store(
            vec![Secret::new(vec![key; 32])],
            "_tollgate",
            Duration::from_secs(3600),
            true,
        );
        (SessionCookies::new(&cfg), Codec::new(&cfg.secrets))
    }

    fn session(groups: usize) -> Session {
        Session {
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            name: None,
            preferred_username: None,
            groups: (0..groups)
                .map(|i| format!("group-with-a-long-name-{i:04}"))
                .collect(),
            access_token: "at".into(),
            access_expires_at: None,
            refresh_token: None,
            id_token: None,
            sid: None,
            email_verified: None,
            claims: Default::default(),
            issued_at: now(),
            expires_at: now() + 3600,
            nonce: None,
            auth_time: None,
            provider: None,
        }
    }

    /// Plays the browser: applies Set-Cookie values to a jar and renders
    /// the Cookie header it would send.
    fn browser(jar: &mut Vec<(String, String)>, set: &[String]) -> String {
        for s in set {
            let c = Cookie::parse(s.clone()).expect("set-cookie parses");
            jar.retain(|(n, _)| n != c.name());
            if c.max_age() != Some(cookie::time::Duration::ZERO) {
                jar.push((c.name().to_string(), c.value().to_string()));
            }
        }
        jar.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn small_session_is_one_cookie_and_round_trips() {
        let (store, codec) = store();
        let set = store.write(&codec, &session(1), &[]).expect("fits");
        assert_eq!(set.len(), 1);
        assert!(set[0].starts_with("_tollgate="));
        assert!(
            set[0].contains("HttpOnly")
                && set[0].contains("Secure")
                && set[0].contains("SameSite=Lax")
        );
        let header = browser(&mut Vec::new(), &set);
        let found = store.read(&codec, &RequestCookies::parse([header.as_bytes()]));
        assert_eq!(
            found.session,
            Some(session(1)).map(|mut s| {
                s.issued_at = found.session.as_ref().map(|f| f.issued_at).unwrap_or(0);
                s.expires_at = found.session.as_ref().map(|f| f.expires_at).unwrap_or(0);
                Arc::new(s)
            })
        );
    }

    #[test]
    fn large_session_is_chunked_and_stale_chunks_are_cleared() {
        let (store, codec) = store();
        let mut jar = Vec::new();
        let big = store.write(&codec, &session(400), &[]).expect("fits");
        assert!(big.len() > 2, "expected chunks, got {}", big.len());
        assert!(big.iter().all(|c| c.len() < 4096));
        let header = browser(&mut jar, &big);
        let found = store.read(&codec, &RequestCookies::parse([header.as_bytes()]));
        assert_eq!(found.session.as_ref().map(|s| s.groups.len()), Some(400));

        // Shrinking back to one cookie expires every chunk.
        let small = store
            .write(&codec, &session(1), &found.present)
            .expect("fits");
        let header = browser(&mut jar, &small);
        assert!(!header.contains("_tollgate_0"), "{header}");
        let found = store.read(&codec, &RequestCookies::parse([header.as_bytes()]));
        assert_eq!(found.session.map(|s| s.groups.len()), Some(1));
    }

    #[test]
    fn missing_chunk_or_garbage_is_no_session() {
        let (store, codec) = store();
        let big = store.write(&codec, &session(400), &[]).expect("fits");
        let mut jar = Vec::new();
        let header = browser(&mut jar, &big[1..]);
        assert!(store
            .read(&codec, &RequestCookies::parse([header.as_bytes()]))
            .session
            .is_none());
        for h in [
            "_tollgate=",
            "_tollgate=garbage",
            "_tollgate_0=x; _tollgate_1=y",
            "_tollgate=\"quoted\"",
        ] {
            assert!(
                store
                    .read(&codec, &RequestCookies::parse([h.as_bytes()]))
                    .session
                    .is_none(),
                "{h}"
            );
        }
    }

    #[test]
    fn session_too_large_to_read_back_is_refused_when_written() {
        let (store, codec) = store();
        assert!(store.write(&codec, &session(3000), &[]).is_err());
    }

    #[test]
    fn expired_session_is_no_session() {
        let (store, codec) = store();
        let mut s = session(1);
        s.expires_at = now() - 1;
        let set = store.write(&codec, &s, &[]).expect("fits");
        let header = browser(&mut Vec::new(), &set);
        for _ in 0..2 {
            assert!(store
                .read(&codec, &RequestCookies::parse([header.as_bytes()]))
                .session
                .is_none());
        }
        assert_eq!(
            store.opened.lock().entries.len(),
            0,
            "expired entries are dropped"
        );
    }

    #[test]
    fn opened_sessions_are_cached_by_exact_value_only() {
        let (store, codec) = store();
        let set = store.write(&codec, &session(1), &[]).expect("fits");
        let header = browser(&mut Vec::new(), &set);
        let first = store.read(&codec, &RequestCookies::parse([header.as_bytes()]));
        let again = store.read(&codec, &RequestCookies::parse([header.as_bytes()]));
        assert!(first.session.is_some());
        assert_eq!(first.session, again.session);
        assert_eq!(store.opened.lock().entries.len(), 1);
        // A value one byte off is not a hit, and does not open.
        let value = header.strip_prefix("_tollgate=").expect("one cookie");
        let last = value.chars().last().expect("non-empty");
        let flipped = format!(
            "_tollgate={}{}",
            &value[..value.len() - 1],
            if last == 'A' { 'B' } else { 'A' }
        );
        assert!(store
            .read(&codec, &RequestCookies::parse([flipped.as_bytes()]))
            .session
            .is_none());
        // Another key ring (a reload with new secrets) does not see it.
        let (other, other_codec) = store_keyed(8);
        assert!(other
            .read(&other_codec, &RequestCookies::parse([header.as_bytes()]))
            .session
            .is_none());
    }

    #[test]
    fn opened_cache_holds_a_bounded_number_of_bytes() {
        let (store, codec) = store();
        // About 6 KiB each: 1,000 of them overflow the budget.
        for i in 0..1000 {
            let mut s = session(200);
            s.sub = format!("user-{i}");
            let set = store.write(&codec, &s, &[]).expect("fits");
            let header = browser(&mut Vec::new(), &set);
            assert!(store
                .read(&codec, &RequestCookies::parse([header.as_bytes()]))
                .session
                .is_some());
        }
        let c = store.opened.lock();
        assert!(c.bytes <= OPENED_CACHE_BYTES, "{} bytes cached", c.bytes);
        assert!(c.entries.len() < 1000);
        assert_eq!(c.bytes, c.entries.values().map(|e| e.bytes).sum::<usize>());
    }

    #[test]
    fn own_cookie_names_are_recognised() {
        let (store, _) = store();
        for n in [
            "_tollgate",
            "_tollgate_0",
            "_tollgate_15",
            "_tollgate_login_abc",
        ] {
            assert!(store.is_ours(n), "{n}");
        }
        for n in [
            "_tollgatex",
            "_tollgate_",
            "_tollgate_x",
            "session",
            "_tollgate_0a",
        ] {
            assert!(!store.is_ours(n), "{n}");
        }
    }
}
