//! Where sessions live: in the sealed cookie itself, or in Redis behind an
//! opaque ticket cookie. The request path sees one interface: load what the
//! request carries, save a new or refreshed session, delete it.

use super::cookies::{Found, RequestCookies, SessionCookies, TooLarge};
use super::redis::{RedisError, RedisStore, Ticket};
use std::sync::Arc;

use super::{Codec, Session};

/// How a loaded session is tied to the request, so it can be saved back or
/// deleted the same way.
#[derive(Debug, Clone, Default)]
pub struct Handle {
    /// Names of our session cookies in the request (to clear stale ones).
    pub present: Vec<String>,
    /// The cookie was sealed with a previous key: re-seal it.
    pub reseal: bool,
    /// The Redis ticket the cookie carried, if any.
    pub ticket: Option<Ticket>,
}

/// A request's session (or none) and its handle.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Shared with the cookie store's opened-session cache.
    pub session: Option<Arc<Session>>,
    pub handle: Handle,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    TooLarge(#[from] TooLarge),
    #[error("session store unavailable: {0}")]
    Unavailable(#[from] RedisError),
}

/// The configured store.
pub enum Backend {
    Cookie,
    Redis(Box<RedisStore>),
}

pub struct SessionStore {
    pub cookies: SessionCookies,
    pub codec: Codec,
    pub backend: Backend,
}

impl SessionStore {
    pub fn is_server_side(&self) -> bool {
        matches!(self.backend, Backend::Redis(_))
    }

    /// The session a request carries. A cookie that does not open, a
    /// ticket whose record is gone, or an expired session: `None`. Only an
    /// unreachable store is an error.
    pub async fn load(&self, cookies: &RequestCookies<'_>) -> Result<Loaded, StoreError> {
        match &self.backend {
            Backend::Cookie => {
                let Found {
                    session,
                    reseal,
                    present,
                } = self.cookies.read(&self.codec, cookies);
                // A signed-out or back-channel-ended session stays sealed
                // and valid-looking until it expires: the server remembers.
                let session = session.filter(|s| !super::revoked::REVOKED.is_revoked(s));
                Ok(Loaded {
                    session,
                    handle: Handle {
                        present,
                        reseal,
                        ticket: None,
                    },
                })
            }
            Backend::Redis(redis) => {
                let (ticket, reseal, present) = self.cookies.read_ticket(&self.codec, cookies);
                let Some(ticket) = ticket else {
                    return Ok(Loaded {
                        session: None,
                        handle: Handle {
                            present,
                            reseal,
                            ticket: None,
                        },
                    });
                };
                let session = redis.get(&ticket).await?.map(Arc::new);
                Ok(Loaded {
                    session,
                    handle: Handle {
                        present,
                        reseal,
                        ticket: Some(ticket),
                    },
                })
            }
        }
    }

    /// Stores `session` and returns the `Set-Cookie` values for the
    /// response. A handle without a ticket (a new login) gets a new one.
    pub async fn save(
        &self,
        session: &Session,
        handle: &Handle,
    ) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Cookie => Ok(self.cookies.write(&self.codec, session, &handle.present)?),
            Backend::Redis(redis) => {
                let ticket = match &handle.ticket {
                    Some(t) => {
                        // An existing record only: one deleted meanwhile
                        // (sign-out, back-channel logout) stays deleted.
                        if !redis.replace(t, session).await? {
                            return Ok(self.cookies.clear(&handle.present));
                        }
                        t.clone()
                    }
                    None => {
                        let t = Ticket::generate();
                        redis.put(&t, session).await?;
                        t
                    }
                };
                if handle.ticket.is_some() && !handle.reseal {
                    // Same ticket, already sealed with the current key.
                    return Ok(Vec::new());
                }
                Ok(self.cookies.write_ticket(
                    &self.codec,
                    &ticket,
                    session.expires_at,
                    &handle.present,
                ))
            }
        }
    }

    /// Ends a session: the server-side record (if any) and every cookie.
    pub async fn delete(
        &self,
        handle: &Handle,
        session: Option<&Session>,
    ) -> Result<Vec<String>, StoreError> {
        match (&self.backend, &handle.ticket, session) {
            (Backend::Redis(redis), Some(ticket), _) => redis.delete(ticket, session).await?,
            (Backend::Cookie, _, Some(s)) => {
                super::revoked::REVOKED.end_session(s);
            }
            _ => {}
        }
        Ok(self.cookies.clear(&handle.present))
    }
}
