//! The Redis session store.
//!
//! The browser's cookie holds only a sealed *ticket*: a random session id and
//! a per-session key. Redis holds the session under `<prefix>s:<sha256(id)>`,
//! encrypted with that key (AES-256-GCM, the Redis key as associated data),
//! so a dump or snapshot of Redis reveals no token and cannot be turned into
//! a session without the browser's cookie.
//!
//! Two sets index the records for back-channel logout: by the provider's
//! session id (`sid`) and by subject. Their members are record keys, which
//! are hashes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::Engine as _;

use super::settings::{RedisConfig, RedisMode};
use super::{now, Session};

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("not connected to Redis yet")]
    NotConnected,
    #[error("Redis: {0}")]
    Command(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// The opaque reference a browser holds: which record, and its key.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    id: [u8; 16],
    key: [u8; 32],
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ticket(<redacted>)")
    }
}

const TICKET_VERSION: &str = "t1";

impl Ticket {
    pub fn generate() -> Self {
        let mut id = [0u8; 16];
        let mut key = [0u8; 32];
        // See `oidc::random_token`: no entropy means no safe session at all.
        #[allow(clippy::expect_used)]
        {
            aws_lc_rs::rand::fill(&mut id).expect("system random number generator failed");
            aws_lc_rs::rand::fill(&mut key).expect("system random number generator failed");
        }
        Self { id, key }
    }

    pub fn encode(&self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{TICKET_VERSION}.{}.{}",
            b64.encode(self.id),
            b64.encode(self.key)
        )
    }

    pub fn parse(text: &str) -> Option<Self> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = text.split('.');
        if parts.next()? != TICKET_VERSION {
            return None;
        }
        let id = b64.decode(parts.next()?).ok()?.try_into().ok()?;
        let key = b64.decode(parts.next()?).ok()?.try_into().ok()?;
        parts.next().is_none().then_some(Self { id, key })
    }

    fn hashed_id(&self) -> String {
        hex(&sha256(&self.id))
    }
}

/// Whether a failed command says the master is unreachable or no longer
/// the master (`READONLY`: a demoted master that came back as a replica).
fn master_lost(e: &RedisError) -> bool {
    match e {
        RedisError::Timeout(_) => true,
        RedisError::Command(e) => {
            e.is_io_error()
                || e.is_connection_dropped()
                || e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly)
        }
        RedisError::NotConnected => false,
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A connection of the configured kind. Each command clones the handle,
/// which is cheap: the connections multiplex and reconnect themselves.
#[derive(Clone)]
enum Conn {
    Single(redis::aio::ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

pub struct RedisStore {
    config: RedisConfig,
    conn: RwLock<Option<Conn>>,
    lifetime: Duration,
    /// Sentinel mode: how many times the master was (re)resolved, so that
    /// of many requests that saw the old master fail, one asks the
    /// sentinels again and the others use its answer.
    generation: AtomicU64,
    /// Held while the sentinels are asked; when they last were.
    resolving: tokio::sync::Mutex<Option<Instant>>,
    /// Whether there is a connection: a command issued before the first
    /// one (a replica that has just started, whose port a load balancer
    /// already uses) waits for it, within `timeout`, instead of failing.
    connected: tokio::sync::watch::Sender<bool>,
}

/// Sentinel mode: the shortest interval between two questions to the
/// sentinels. While they have not yet promoted a replica, each answer names
/// the dead master again; asking at every failed request would only add
/// load to a failover.
const RESOLVE_INTERVAL: Duration = Duration::from_millis(250);

impl RedisStore {
    pub fn new(config: RedisConfig, lifetime: Duration) -> Self {
        Self {
            config,
            conn: RwLock::new(None),
            lifetime,
            generation: AtomicU64::new(0),
            resolving: tokio::sync::Mutex::new(None),
            connected: tokio::sync::watch::Sender::new(false),
        }
    }

    fn conn(&self) -> Result<Conn, RedisError> {
        self.conn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(RedisError::NotConnected)
    }

    /// Connects (the connection then reconnects by itself). Called in the
    /// background until it succeeds; requests get 503 meanwhile.
    pub async fn connect(&self) -> Result<(), RedisError> {
        let c = &self.config;
        let conn = match c.mode {
            RedisMode::Standalone => {
                let client = redis::Client::open(c.url.as_str())?;
                let cfg = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(c.timeout))
                    .set_response_timeout(Some(c.timeout))
                    .set_number_of_retries(2);
                Conn::Single(redis::aio::ConnectionManager::new_with_config(client, cfg).await?)
            }
            RedisMode::Sentinel => Conn::Single(self.sentinel_master().await?),
            RedisMode::Cluster => {
                let client = redis::cluster::ClusterClientBuilder::new(c.nodes.clone())
                    .connection_timeout(c.timeout)
                    .response_timeout(c.timeout)
                    .build()?;
                Conn::Cluster(client.get_async_connection().await?)
            }
        };
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        self.generation.fetch_add(1, Ordering::Release);
        self.connected.send_replace(true);
        Ok(())
    }

    /// A connection to the master the sentinels name now. The `redis`
    /// crate's connection manager reconnects to the address it was given,
    /// so after a failover it would keep knocking at the old master (or
    /// write to it once it is back as a read-only replica): the store asks
    /// the sentinels again instead ([`RedisStore::follow_master`]).
    async fn sentinel_master(&self) -> Result<redis::aio::ConnectionManager, RedisError> {
        let c = &self.config;
        let mut sentinel = redis::sentinel::SentinelClient::build(
            c.nodes.clone(),
            c.sentinel_master.clone(),
            c.node_connection_info(),
            redis::sentinel::SentinelServerType::Master,
        )?;
        let client = sentinel.async_get_client().await?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(c.timeout))
            .set_response_timeout(Some(c.timeout))
            .set_number_of_retries(1);
        Ok(redis::aio::ConnectionManager::new_with_config(client, cfg).await?)
    }

    /// Sentinel mode, after a command failed in a way that says the master
    /// is gone or demoted: asks the sentinels for the master once (for all
    /// requests that saw the same failure) and switches to it. Returns
    /// whether there is a new connection to retry on.
    async fn follow_master(&self, seen: u64) -> bool {
        let mut last = self.resolving.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < RESOLVE_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        match tokio::time::timeout(self.config.timeout, self.sentinel_master()).await {
            Ok(Ok(conn)) => {
                *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(Conn::Single(conn));
                self.generation.fetch_add(1, Ordering::Release);
                tracing::info!("Redis master re-resolved through the sentinels");
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "the sentinels name no reachable Redis master yet");
                false
            }
            Err(_) => false,
        }
    }

    /// Takes over another store's connection when both point at the same
    /// Redis (a config reload that did not touch `[session.redis]`).
    pub fn adopt(&self, other: &RedisStore) -> bool {
        let (a, b) = (&self.config, &other.config);
        let same = a.url == b.url
            && a.mode == b.mode
            && a.nodes == b.nodes
            && a.sentinel_master == b.sentinel_master
            && a.username == b.username
            && a.password.as_ref().map(|p| p.expose()) == b.password.as_ref().map(|p| p.expose())
            && a.key_prefix == b.key_prefix;
        if !same {
            return false;
        }
        let conn = other.conn.read().unwrap_or_else(|e| e.into_inner()).clone();
        let adopted = conn.is_some();
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = conn;
        self.connected.send_replace(adopted);
        adopted
    }

    pub fn is_connected(&self) -> bool {
        self.conn
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisError> {
        let seen = self.generation.load(Ordering::Acquire);
        match self.query_once(cmd).await {
            Err(e)
                if self.config.mode == RedisMode::Sentinel
                    && master_lost(&e)
                    && self.follow_master(seen).await =>
            {
                self.query_once(cmd).await
            }
            result => result,
        }
    }

    async fn query_once<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, RedisError> {
        let timeout = self.config.timeout;
        let fut = async {
            let conn = match self.conn() {
                Err(RedisError::NotConnected) => {
                    let _ = self.connected.subscribe().wait_for(|c| *c).await;
                    self.conn()?
                }
                other => other?,
            };
            match conn {
                Conn::Single(mut c) => Ok(cmd.query_async(&mut c).await?),
                Conn::Cluster(mut c) => Ok(cmd.query_async(&mut c).await?),
            }
        };
        tokio::time::timeout(timeout, fut).await.map_err(|_| {
            if self.is_connected() {
                RedisError::Timeout(timeout)
            } else {
                RedisError::NotConnected
            }
        })?
    }

    /// Answers PING (readiness).
    pub async fn ping(&self) -> bool {
        matches!(self.query::<String>(&redis::cmd("PING")).await, Ok(p) if p == "PONG")
    }

    fn record_key(&self, ticket: &Ticket) -> String {
        format!("{}s:{}", self.config.key_prefix, ticket.hashed_id())
    }

    fn index_key(&self, kind: &str, value: &str) -> String {
        format!(
            "{}{kind}:{}",
            self.config.key_prefix,
            hex(&sha256(value.as_bytes()))
        )
    }

    /// The session behind a ticket; `None` when the record is gone, does
    /// not decrypt with the ticket's key, or has expired.
    pub async fn get(&self, ticket: &Ticket) -> Result<Option<Session>, RedisError> {
        let key = self.record_key(ticket);
        let raw: Option<Vec<u8>> = self.query(redis::cmd("GET").arg(&key)).await?;
        Ok(raw
            .and_then(|r| open(&ticket.key, &key, r))
            .and_then(|p| serde_json::from_slice::<Session>(&p).ok())
            .filter(|s| !s.is_expired(now())))
    }

    /// Writes a new session; its time to live is what remains of its
    /// lifetime.
    pub async fn put(&self, ticket: &Ticket, session: &Session) -> Result<(), RedisError> {
        self.write(ticket, session, false).await.map(|_| ())
    }

    /// Rewrites a session only if its record still exists (`SET … XX`):
    /// a refresh that was under way when the user signed out, or when a
    /// back-channel logout ended the session, must not bring it back.
    /// Returns false when the record was gone.
    pub async fn replace(&self, ticket: &Ticket, session: &Session) -> Result<bool, RedisError> {
        self.write(ticket, session, true).await
    }

    async fn write(
        &self,
        ticket: &Ticket,
        session: &Session,
        only_if_present: bool,
    ) -> Result<bool, RedisError> {
        let key = self.record_key(ticket);
        let plaintext = serde_json::to_vec(session).unwrap_or_default();
        let sealed = seal(&ticket.key, &key, plaintext);
        let ttl_ms = ((session.expires_at - now()).max(1) as u64).saturating_mul(1000);
        let mut set = redis::cmd("SET");
        set.arg(&key).arg(sealed).arg("PX").arg(ttl_ms);
        if only_if_present {
            set.arg("XX");
        }
        // `OK`, or nil when XX found no record.
        let written: Option<String> = self.query(&set).await?;
        if written.is_none() {
            return Ok(false);
        }
        let lifetime_ms = self.lifetime.as_millis() as u64;
        let scoped = |v| Session::scoped(session.provider_id(), v).into_owned();
        let mut indexes = vec![self.index_key("sub", &scoped(&session.sub))];
        if let Some(sid) = &session.sid {
            indexes.push(self.index_key("sid", &scoped(sid)));
        }
        for index in indexes {
            self.query::<()>(redis::cmd("SADD").arg(&index).arg(&key))
                .await?;
            self.query::<()>(redis::cmd("PEXPIRE").arg(&index).arg(lifetime_ms))
                .await?;
        }
        Ok(true)
    }

    /// Deletes one session.
    pub async fn delete(
        &self,
        ticket: &Ticket,
        session: Option<&Session>,
    ) -> Result<(), RedisError> {
        let key = self.record_key(ticket);
        self.query::<()>(redis::cmd("DEL").arg(&key)).await?;
        if let Some(s) = session {
            let sub = Session::scoped(s.provider_id(), &s.sub);
            self.query::<()>(
                redis::cmd("SREM")
                    .arg(self.index_key("sub", &sub))
                    .arg(&key),
            )
            .await?;
            if let Some(sid) = &s.sid {
                let sid = Session::scoped(s.provider_id(), sid);
                self.query::<()>(
                    redis::cmd("SREM")
                        .arg(self.index_key("sid", &sid))
                        .arg(&key),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes every session of a provider session (`sid`) or, with no
    /// `sid`, of a subject. Returns how many records were deleted.
    pub async fn end(&self, sid: Option<&str>, sub: Option<&str>) -> Result<usize, RedisError> {
        // With both, only sessions of that provider session *and* that
        // subject end: a token naming alice's `sid` with `sub: bob` must not
        // end alice's session (Back-Channel Logout §2.6).
        // Every command touches one key (Redis Cluster: no CROSSSLOT), so
        // the intersection is made member by member.
        let index = match (sid, sub) {
            (Some(sid), _) => self.index_key("sid", sid),
            (None, Some(sub)) => self.index_key("sub", sub),
            (None, None) => return Ok(0),
        };
        let mut members: Vec<String> = self.query(redis::cmd("SMEMBERS").arg(&index)).await?;
        if let (Some(_), Some(sub)) = (sid, sub) {
            let sub_index = self.index_key("sub", sub);
            let mut mine = Vec::with_capacity(members.len());
            for m in members {
                if self
                    .query::<bool>(redis::cmd("SISMEMBER").arg(&sub_index).arg(&m))
                    .await?
                {
                    mine.push(m);
                }
            }
            members = mine;
        }
        let mut ended = 0;
        for m in &members {
            ended += self.query::<usize>(redis::cmd("DEL").arg(m)).await?;
            self.query::<()>(redis::cmd("SREM").arg(&index).arg(m))
                .await?;
        }
        Ok(ended)
    }

    /// Records a logout token's `jti`; false when it was seen before.
    pub async fn claim_jti(
        &self,
        issuer: &str,
        jti: &str,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let key = self.index_key("jti", &format!("{issuer}\n{jti}"));
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64),
            )
            .await?;
        Ok(set.is_some())
    }

    /// Takes the cross-replica refresh lock of a session for `ttl`.
    pub async fn try_lock(
        &self,
        ticket: &Ticket,
        token: &str,
        ttl: Duration,
    ) -> Result<bool, RedisError> {
        let key = format!("{}lock:{}", self.config.key_prefix, ticket.hashed_id());
        let set: Option<String> = self
            .query(
                redis::cmd("SET")
                    .arg(&key)
                    .arg(token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl.as_millis() as u64),
            )
            .await?;
        Ok(set.is_some())
    }

    /// Releases the lock if it is still ours.
    pub async fn unlock(&self, ticket: &Ticket, token: &str) -> Result<(), RedisError> {
        let key = format!("{}lock:{}", self.config.key_prefix, ticket.hashed_id());
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let mut invocation = script.prepare_invoke();
        invocation.key(&key).arg(token);
        let timeout = self.config.timeout;
        let fut = async {
            match self.conn()? {
                Conn::Single(mut c) => {
                    Ok::<i64, RedisError>(invocation.invoke_async(&mut c).await?)
                }
                Conn::Cluster(mut c) => Ok(invocation.invoke_async(&mut c).await?),
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| RedisError::Timeout(timeout))??;
        Ok(())
    }
}

fn seal(key: &[u8; 32], aad: &str, mut plaintext: Vec<u8>) -> Vec<u8> {
    let Ok(k) = RandomizedNonceKey::new(&AES_256_GCM, key) else {
        return Vec::new();
    };
    match k.seal_in_place_append_tag(Aad::from(aad.as_bytes()), &mut plaintext) {
        Ok(nonce) => {
            let mut out = nonce.as_ref().to_vec();
            out.extend_from_slice(&plaintext);
            out
        }
        Err(_) => Vec::new(),
    }
}

fn open(key: &[u8; 32], aad: &str, mut sealed: Vec<u8>) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let k = RandomizedNonceKey::new(&AES_256_GCM, key).ok()?;
    let mut body = sealed.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&sealed).ok()?;
    let len = k
        .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut body)
        .ok()?
        .len();
    body.truncate(len);
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trips_and_rejects_garbage() {
        let t = Ticket::generate();
        assert_eq!(Ticket::parse(&t.encode()), Some(t.clone()));
        for bad in [
            "",
            "t1",
            "t1.a.b",
            "t2.AAAA.AAAA",
            &format!("{}.x", t.encode()),
        ] {
            assert!(Ticket::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn records_open_only_with_their_key_and_name() {
        let key = [7u8; 32];
        let sealed = seal(&key, "tollgate:s:abc", b"secret session".to_vec());
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            open(&key, "tollgate:s:abc", sealed.clone()).as_deref(),
            Some(&b"secret session"[..])
        );
        assert!(open(&[8u8; 32], "tollgate:s:abc", sealed.clone()).is_none());
        assert!(open(&key, "tollgate:s:other", sealed.clone()).is_none());
        assert!(open(&key, "tollgate:s:abc", sealed[..10].to_vec()).is_none());
    }
}
